import ArgumentParser
import BunkerCore
import BunkerService
import Foundation

extension BunkerCommand {
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show the repository's sizes and ratios.")

        @OptionGroup var repository: RepositoryOptions

        func run() async throws {
            try await repository.output.run {
                let stats = try await repository.service().stats()
                if repository.output.json {
                    Output.printJSON(stats)
                    return
                }
                print("Snapshots:          \(stats.snapshots)\(stats.heldSnapshots > 0 ? " (\(stats.heldSnapshots) held)" : "")")
                for (kind, count) in stats.snapshotsByKind.sorted(by: { $0.key < $1.key }) {
                    print("  \(kind): \(count)")
                }
                for (tag, count) in stats.snapshotsByTag.sorted(by: { $0.key < $1.key }) {
                    print("  tagged \(tag): \(count)")
                }
                if let oldest = stats.oldest, let newest = stats.newest {
                    print("Oldest, newest:     \(Output.localTime(oldest)), \(Output.localTime(newest))")
                }
                print("Logical size:       \(Output.bytes(stats.logicalBytes)) (all snapshots)")
                print("Unique data:        \(Output.bytes(stats.uniqueBytes)) in \(stats.blobs) blobs")
                print("Stored size:        \(Output.bytes(stats.storedBytes)) in \(stats.packs) packs")
                print(String(format: "Deduplication:      %.2f×", stats.deduplicationRatio))
                print(String(format: "Compression:        %.2f×", stats.compressionRatio))
                if !stats.sources.isEmpty {
                    print("Last backup:")
                    for source in stats.sources {
                        print("  \(source.name) (\(source.kind)): \(Output.localTime(source.lastBackup)), snapshot \(source.snapshot.prefix(8))")
                    }
                }
                if !stats.sourcesNeverBackedUp.isEmpty {
                    print("Never backed up:    \(stats.sourcesNeverBackedUp.joined(separator: ", "))")
                }
                if let lock = stats.objectLock {
                    print("Object lock:        \(lock.mode.rawValue), \(lock.days) days; " + (lock.immutable
                        ? "enforced by the bucket: immutable"
                        : "NOT enforced by the bucket: not immutable (see `bunker verify`)"))
                }
                for wal in stats.wal ?? [] {
                    print("WAL of \(wal.source):\(String(repeating: " ", count: max(1, 12 - wal.source.count)))\(wal.objects) files, \(Output.bytes(wal.storedBytes))" + (wal.archiveLagSeconds.map { ", archive lag \(Output.duration($0))" } ?? ""))
                    for timeline in wal.timelines {
                        print("  timeline \(timeline.timeline): \(timeline.firstSegment) … \(timeline.lastSegment) (\(timeline.segments) segments\(timeline.gaps.isEmpty ? "" : ", \(timeline.gaps.count) GAPS"))")
                    }
                    if let first = wal.firstPush, let last = wal.lastPush {
                        print("  pushed from \(Output.localTime(first)) to \(Output.localTime(last))")
                    }
                    if let start = wal.windowStart, let end = wal.windowEnd {
                        print("  restorable to any moment from \(Output.localTime(start)) to \(Output.localTime(end))")
                    }
                }
                if let free = stats.freeBytes, let total = stats.totalBytes, total > 0 {
                    print(String(format: "Free space:         %@ of %@ (%.0f%%)", Output.bytes(free), Output.bytes(total), Double(free) / Double(total) * 100))
                }
            }
        }
    }
}
