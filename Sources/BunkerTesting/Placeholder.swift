import BunkerCore
