package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/log"
)

// A data directory is spool's only if it says so: the marker file SPOOL
// holds markerText exactly. spool removes files only inside directories
// it can prove it made, so a --data pointed at an existing tree (a home
// directory, a photo archive) is refused instead of being tidied up.
//
// Directories of round 1 have no marker; they are recognized by the LOCK
// file and queues/ directory every one of them has, and get the marker
// the first time a server opens them.
const (
	markerName = "SPOOL"
	markerText = "spool data directory\nformat 1\n"
	lockName   = "LOCK"
	queuesName = "queues"
	topicsName = "topics"
)

// Names inside queues/ that spool gives its own transient directories.
// Both start with a dot, so no queue is ever named like them: a create is
// staged in a .creating- directory and renamed into place once queue.json
// is durable, and a delete renames the queue to a .deleting- directory
// before removing it. A crash leaves only these half-done, and start-up
// removes them; a directory with a queue's name is never removed unless
// the queue is deleted.
const (
	creatingPrefix = ".creating-"
	deletingPrefix = ".deleting-"
)

// dataDirState is what inspectDataDir found.
type dataDirState int

const (
	dataDirNew    dataDirState = iota // missing or empty: Open makes it spool's
	dataDirMarked                     // has a valid marker
	dataDirLegacy                     // a round-1 directory: LOCK (and queues/), no marker
)

// inspectDataDir says whether dir is spool's, without changing anything.
// A directory holding anything else is ErrNotDataDir.
func inspectDataDir(dir string) (dataDirState, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return dataDirNew, nil
	}
	if err != nil {
		return 0, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return dataDirNew, nil
	}
	marker, err := os.ReadFile(filepath.Join(dir, markerName))
	switch {
	case err == nil && bytes.Equal(marker, []byte(markerText)):
		return dataDirMarked, nil
	case err == nil:
		return 0, fmt.Errorf("%w: %s: %s does not hold what spool writes there (damaged, or from a newer spool?)", ErrNotDataDir, dir, markerName)
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("data directory %s: %w", dir, err)
	}
	lock, lerr := os.Stat(filepath.Join(dir, lockName))
	queues, qerr := os.Stat(filepath.Join(dir, queuesName))
	// A LOCK alone is what `spool check` of an empty directory leaves.
	if lerr == nil && lock.Mode().IsRegular() && ((qerr == nil && queues.IsDir()) || len(entries) == 1) {
		return dataDirLegacy, nil
	}
	return 0, fmt.Errorf("%w: %s holds files spool did not create (it has no %s file); point --data at a new or empty directory", ErrNotDataDir, dir, markerName)
}

// markDataDir writes the marker of a directory inspectDataDir accepted.
// The caller holds the directory's lock.
func (b *Broker) markDataDir() error {
	if err := log.WriteFileAtomic(b.opts.FS, filepath.Join(b.dir, markerName), []byte(markerText)); err != nil {
		return fmt.Errorf("data directory %s: %w", b.dir, err)
	}
	return nil
}

// namedDirs returns the entries of root (queues/, topics/ or a topic's
// subscriptions/; kind names them in the log) that can name one. On the
// way it removes each create or delete a crash interrupted (spool's own
// transient directories: a create never acknowledged, a delete already
// committed), and logs, and leaves alone, each entry no name can have.
func (b *Broker) namedDirs(root, kind string, lg *slog.Logger) ([]string, error) {
	names, err := b.opts.FS.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var valid []string
	for _, name := range names {
		path := filepath.Join(root, name)
		switch {
		case isTransientDir(name):
			lg.Warn("queue: removing an interrupted create or delete", "path", path)
			if err := b.opts.FS.RemoveAll(path); err != nil {
				lg.Error("queue: cannot remove an interrupted create or delete", "path", path, "err", err)
			}
		case !ValidName(name):
			lg.Warn("queue: ignoring entry that is not a "+kind+" name", "path", path)
		default:
			valid = append(valid, name)
		}
	}
	return valid, nil
}

// isTransientDir reports whether name, an entry of queues/, is a create or
// delete a crash interrupted.
func isTransientDir(name string) bool {
	return strings.HasPrefix(name, creatingPrefix) || strings.HasPrefix(name, deletingPrefix)
}

var transientSeq atomic.Uint64

// transientDir returns a fresh path for a staged create or a delete of
// queue name under root.
func transientDir(root, prefix, name string) string {
	n := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(transientSeq.Add(1), 36)
	return filepath.Join(root, prefix+name+"-"+n)
}

// removeQueueDir takes a queue directory out of the data directory: a
// rename to a .deleting- name (fsynced, so the queue cannot come back after
// a crash), then the removal of that directory. A removal that fails is
// finished by the next start.
func (b *Broker) removeQueueDir(root, qdir, name string) error {
	gone := transientDir(root, deletingPrefix, name)
	if err := b.opts.FS.Rename(qdir, gone); err != nil {
		return fmt.Errorf("remove queue %s: %w", name, err)
	}
	if err := b.opts.FS.SyncDir(root); err != nil {
		return fmt.Errorf("remove queue %s: %w", name, err)
	}
	if err := b.opts.FS.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove queue %s: %w (the next start removes the rest)", name, err)
	}
	return nil
}
