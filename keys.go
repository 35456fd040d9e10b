package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
)

func keysCommand(flags *pflag.FlagSet, env *cmdEnv) func([]string) error {
	file := flags.String("keys", "", "the keys file, as serve's --keys names it (env SPOOL_KEYS, as serve's)")
	scope := flags.String("scope", "", "add: the key's scopes, e.g. produce:orders-*,read:orders-*")
	helpFor(flags, env, `Manage the API keys of a keys file (spool serve --keys FILE).

  spool keys add NAME --scope SCOPES --keys FILE
                       make a key: print its secret (once: only its hash
                       is kept) and append its line to FILE, made 0600 if
                       it does not exist
  spool keys list --keys FILE
                       each key's name and scopes

SCOPES is a comma-separated list of read, produce, consume or admin, each
optionally :GLOB, the queue and topic names it covers (path.Match
syntax; a subscription is TOPIC/SUB; no GLOB is every name):

  read       list, info, peek, dead letters; /metrics with read on *
  produce    enqueue, publish
  consume    receive, ack, nack, extend, fail, stream
  admin      everything, creating, changing and deleting included

A running server reads the file again on SIGHUP (systemctl reload spool).

Examples:
  spool keys add billing --scope produce:orders,read:orders --keys /etc/spool/keys
  spool keys add workers --scope consume:orders,consume:orders/* --keys /etc/spool/keys
  spool keys list --keys /etc/spool/keys
`)
	return func(args []string) error {
		if len(args) == 0 {
			return usageError{"keys takes an action: add or list (spool keys --help)"}
		}
		if *file == "" {
			return usageError{"keys " + args[0] + " needs --keys FILE (the file serve's --keys names)"}
		}
		switch action, rest := args[0], args[1:]; action {
		case "add":
			if len(rest) != 1 {
				return usageError{"keys add takes one NAME"}
			}
			if *scope == "" {
				return usageError{"keys add needs --scope (e.g. --scope produce:orders)"}
			}
			return addKey(env, *file, rest[0], *scope)
		case "list":
			if len(rest) != 0 || flags.Changed("scope") {
				return usageError{"keys list takes no NAME and no --scope"}
			}
			ks, err := api.LoadKeys(*file)
			if err != nil {
				return err
			}
			for _, k := range ks.List() {
				parts := make([]string, len(k.Grants))
				for i, g := range k.Grants {
					parts[i] = g.String()
				}
				fmt.Fprintf(env.stdout, "%s\t%s\n", k.Name, strings.Join(parts, ","))
			}
			return nil
		default:
			return usageError{fmt.Sprintf("unknown keys action %q: add or list", action)}
		}
	}
}

// addKey makes the key name, appends its line to the keys file and
// prints its secret. The file as it will be is parsed first, so a name
// already taken, or a file that is not a keys file, changes nothing.
func addKey(env *cmdEnv, file, name, scope string) error {
	line, secret, err := api.NewKeyLine(name, scope)
	if err != nil {
		return usageError{err.Error()}
	}
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keys file: %w", err)
	}
	text := string(old)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if _, err := api.ParseKeys(strings.NewReader(text + line + "\n")); err != nil {
		return fmt.Errorf("keys file %s: %w", file, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	prefix := ""
	if len(old) > 0 && !strings.HasSuffix(string(old), "\n") {
		prefix = "\n"
	}
	if _, err := f.WriteString(prefix + line + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("keys file %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keys file %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keys file %s: %w", file, err)
	}
	fmt.Fprintln(env.stdout, secret)
	fmt.Fprintf(env.stderr, "key %s added to %s; the secret above is shown once (send it as Authorization: Bearer <secret>); reload the server with SIGHUP\n", name, file)
	return nil
}
