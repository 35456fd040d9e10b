package queue

import (
	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// The names below are the engine's, re-exported so that callers of queue
// (api, bench, main, embedders) configure and read a Broker without
// importing the packages under it: the import graph stays
// main → api → queue → {index, log}.

// SyncPolicy says when the message and state logs fsync (Options.Sync).
type SyncPolicy = log.SyncPolicy

// The sync policies; the zero value, SyncAlways, is the safe one.
const (
	// SyncAlways: a write returns only once it is fsynced; concurrent writes
	// share one fsync (group commit).
	SyncAlways = log.SyncAlways
	// SyncInterval: a write returns once written; a timer fsyncs every
	// Options.SyncInterval, so a power loss can lose that much.
	SyncInterval = log.SyncInterval
	// SyncNone: fsync only at rotation, snapshots and Close; a power loss
	// can lose anything the kernel had not written back.
	SyncNone = log.SyncNone
)

// DefaultSyncInterval is Options.SyncInterval's default.
const DefaultSyncInterval = log.DefaultSyncInterval

// ParseSyncPolicy parses "always", "interval" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) { return log.ParseSyncPolicy(s) }

// FS is the file system queues write through (Options.FS): log.OS, or a
// fault-injecting one in tests.
type FS = log.FS

// Commit describes one commit round of a queue's message log, as passed to
// Options.OnCommit.
type Commit = log.Commit

// State is where a message is in its life (Message.State).
type State = index.State

// The message states a caller can see.
const (
	StateReady   = index.StateReady
	StateDelayed = index.StateDelayed
	StateLeased  = index.StateLeased
	StateDead    = index.StateDead
)
