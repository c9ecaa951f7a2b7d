import Foundation
import Testing

@testable import BunkerSources

/// The counter reads pg_dump's plain output as it streams by, cut anywhere.
@Suite struct DumpRowCounterTests {
    /// A dump as pg_dump writes it, with user text that reads like a COPY statement in every
    /// place SQL can hold text: a name, a comment, a default, a function body, an E'' string.
    static let dump = #"""
        --
        -- PostgreSQL database dump
        --

        \restrict AbC123

        -- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
        -- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

        SET standard_conforming_strings = on;
        SELECT pg_catalog.set_config('search_path', '', false);

        CREATE FUNCTION public.f() RETURNS text
            LANGUAGE sql
            AS $_$
        SELECT 'x';
        COPY public.x FROM stdin;
        $_$;

        CREATE FUNCTION public.g() RETURNS text
            LANGUAGE sql
            AS $$SELECT $a$
        COPY public.x FROM stdin;
        $a$$$;

        CREATE TABLE public."a
        COPY public.x FROM stdin;
        " (
            i integer DEFAULT 7,
            note text DEFAULT 'it''s
        COPY public.x FROM stdin;
        ',
            e text DEFAULT E'\'
        COPY public.x FROM stdin;
        '
        );

        /* a block comment /* nested
        COPY public.x FROM stdin;
        */ still a comment
        COPY public.x FROM stdin;
        */

        COMMENT ON TABLE public.t IS '
        --
        -- Data for Name: x; Type: TABLE DATA; Schema: public; Owner: postgres
        --

        COPY public.x FROM stdin;
        ';

        --
        -- Data for Name: a COPY public.x FROM stdin; ; Type: TABLE DATA; Schema: public; Owner: postgres
        --

        COPY public."a
        COPY public.x FROM stdin;
        " (i, note, e) FROM stdin;
        1	it's	\\
        2	\N	x\nCOPY public.x FROM stdin;
        \.


        --
        -- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: postgres
        --

        COPY public.t (i) FROM stdin;
        5
        \.


        COPY public."Audit Log" (at, what) FROM stdin;
        \.


        --
        -- PostgreSQL database dump complete
        --

        \unrestrict AbC123

        """#

    @Test(arguments: [1, 2, 3, 7, 64, 1 << 20])
    func countsOnlyTheRowsOfRealCopyStatementsWhereverTheDumpIsCut(chunk: Int) {
        var counter = DumpRowCounter()
        let bytes = Array(Self.dump.utf8)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + chunk)
            bytes[start..<end].withUnsafeBytes { counter.consume($0) }
            start = end
        }
        #expect(counter.counts == ["public.\"a\nCOPY public.x FROM stdin;\n\"": 2, "public.t": 1, "public.\"Audit Log\"": 0])
        #expect(counter.serverVersion == "15.18 (Debian 15.18-0+deb12u1)")
    }
}
