package main

// How a command's failure reaches the user: one line, "spool: " and what
// went wrong, said for someone at a terminal, with an exit status.

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
)

// usageError marks a bad command line: exit status 2, like flag parsing.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitStatus carries an exit code other than the usual 1.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	var es exitStatus
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &es):
		return es.code
	}
	return 1
}

// cliError is an error with the text the CLI prints in place of its own;
// errors.Is and errors.As still see the original.
type cliError struct {
	text string
	err  error
}

func (e cliError) Error() string { return e.text }
func (e cliError) Unwrap() error { return e.err }

// explain rewords a command's error for the terminal. main prefixes
// "spool: ", so a leading "spool: " of the error (api.Client's errors
// carry one) goes; an error reply reads as the server's message with its
// status and code after it (api.Error's text puts "spool:", status and
// code first, and the message starts with the code's words again); and a
// server that is not there is named, with what to do. fs is the command's
// flag set, for its --addr and --token.
func explain(err error, fs *pflag.FlagSet) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	addr, hasAddr := flagValue(fs, "addr")
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		token, _ := flagValue(fs, "token")
		text = strings.Replace(text, ae.Error(), replyText(ae, token != ""), 1)
	case hasAddr && errors.Is(err, syscall.ECONNREFUSED):
		text = fmt.Sprintf("no spool server at %s: start one with `spool serve`, or point --addr / SPOOL_ADDR at it", addr)
	}
	text = strings.TrimPrefix(text, "spool: ")
	if text == err.Error() {
		return err
	}
	return cliError{text, err}
}

// replyText is an error reply as the CLI tells it: the server's message,
// then [status code] for scripts and searches. A 401 says which flag
// carries the token instead of which header.
func replyText(e *api.Error, sentToken bool) string {
	msg := e.Message
	switch {
	case e.Code == "": // not our server's reply (a proxy's page): Message holds the status
		return "the server answered " + msg
	case e.Code == api.CodeUnauthorized && sentToken:
		msg = "unauthorized: the server refused the token given (--token or SPOOL_TOKEN)"
	case e.Code == api.CodeUnauthorized:
		msg = "unauthorized: the server wants a token: pass --token or set SPOOL_TOKEN"
	}
	return fmt.Sprintf("%s [%d %s]", msg, e.Status, e.Code)
}

// flagValue returns the value of fs's flag name, and whether fs has it.
func flagValue(fs *pflag.FlagSet, name string) (string, bool) {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String(), true
	}
	return "", false
}
