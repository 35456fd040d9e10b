package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/queue"
)

func backupCommand(flags *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(flags)
	helpFor(flags, env, `Take an online backup of a running server: a copy of every queue, topic
and subscription (snapshots, message segments, state logs) as they all
stood at one moment, written to DEST, which must not exist or be empty.
Producers and consumers go on meanwhile. The copy is checked (spool
check) before it is put in place; 'spool serve --data DEST' then opens it
with exactly the state the server had at that moment: every message
acknowledged before it, no ack after it.

It is written to a DEST.partial-* directory beside DEST and renamed once
complete and checked, so a DEST is always a whole backup. It needs an
admin key (or the token) when the server has them.

Examples:
  spool backup /var/backups/spool-$(date +%F)
  spool --addr queue.internal:7070 --token "$TOKEN" backup ./spool-copy
`)
	return func(args []string) error {
		if len(args) != 1 {
			return usageError{"backup takes one DEST directory"}
		}
		return backup(env, c, args[0])
	}
}

func backup(env *cmdEnv, c clientFlags, dest string) error {
	if entries, err := os.ReadDir(dest); err == nil && len(entries) > 0 {
		return usageError{fmt.Sprintf("backup: %s is not empty: give a new directory", dest)}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(dest))
	tmp, err := os.MkdirTemp(parent, filepath.Base(filepath.Clean(dest))+".partial-")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	pr, pw := io.Pipe()
	go func() {
		_, err := c.client().Backup(env.ctx, pw)
		pw.CloseWithError(err)
	}()
	files, bytes, err := queue.RestoreBackup(pr, tmp)
	pr.CloseWithError(errors.New("the restore stopped")) // ends the download if the restore failed first
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	rep, err := queue.Check(tmp)
	if err != nil {
		return fmt.Errorf("backup: checking the copy: %w", err)
	}
	if n := unrepairable(printCheck(env.stdout, rep)); n > 0 {
		keep = true
		return fmt.Errorf("backup: the copy in %s has %d problems (kept for a look; DEST not written)", tmp, n)
	}
	if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %w", err) // DEST was empty: its directory goes, the copy takes its name
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	keep = true
	if err := log.OS.SyncDir(parent); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(env.stdout, "backup: %d queues, %d topics: %d files, %d bytes in %s\n", len(rep.Queues), len(rep.Topics), files, bytes, dest)
	return nil
}
