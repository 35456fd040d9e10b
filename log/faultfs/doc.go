// Package faultfs is an in-memory log.FS for tests that need to lose power
// or have the disk misbehave on demand. It owns nothing on the real file
// system: every byte lives in memory and disappears with the FS value.
//
// # Power-loss model
//
// The model is deliberately the pessimistic one a crash-safe storage engine
// must survive, so that a test passing here means the code issued every
// fsync it needs, not that the disk happened to be kind.
//
// A file is an inode holding two byte slices: data, what reads see now, and
// durable, data as of the inode's last successful File.Sync. A directory
// holds two name tables: entries, what lookups see now, and durable entries,
// entries as of its last successful FS.SyncDir. [FS.PowerCut] makes, for
// every directory still reachable through durable entries, entries :=
// durable entries, and for every file reached that way, data := durable.
// Every file handle opened before the cut fails from then on with an error
// matching [ErrPowerCut] and os.ErrClosed.
//
// Consequences worth knowing when writing a test:
//
//   - A write, or a Truncate, not followed by Sync of that file is lost.
//   - A create, rename or remove not followed by SyncDir of the directory
//     it changed is undone. An unsynced rename brings the old name back and
//     leaves the new name showing whatever it durably was before.
//   - Durable bytes belong to the inode, not the name: a file synced, then
//     renamed without SyncDir, shows its synced bytes under the old name
//     after a cut.
//   - A file whose creation was dir-synced but whose bytes were never
//     synced survives as an empty file.
//   - A rename between two directories is two independent directory
//     changes: syncing only the destination leaves the file under both
//     names after a cut; syncing only the source loses it under both, the
//     destination showing what it durably held before.
//   - Removing a directory (Remove or RemoveAll) is, like removing a file,
//     undone unless its parent is synced; the subtree comes back as it
//     durably was.
//
// One simplification: creating a directory (MkdirAll) is durable at once,
// as if the parent had been synced for that one entry. Spool creates its
// directories at setup, not on a crash-sensitive path, and modelling
// unsynced mkdir would force every test to SyncDir each parent first.
//
// Absolute and relative paths share one namespace: "/a/b" and "a/b" name
// the same file. Paths are cleaned with filepath.Clean; a path that climbs
// above the root with ".." is rejected.
//
// # Fault injection
//
// [FS.SetHook] installs a function consulted before every operation. It
// runs without the FS lock held, so it may call [FS.Count], [FS.ReadFile]
// or even [FS.PowerCut]: calling PowerCut and returning an error models
// power failing at exactly that operation. [FailNth] builds the common
// "fail the n-th fsync" hook, and [ShortWrite] lets a write land partially
// as on a full disk ([ErrNoSpace]).
package faultfs
