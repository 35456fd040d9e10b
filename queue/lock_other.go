//go:build !unix

package queue

// lockDir does nothing where flock is missing: spool targets Linux, and
// other systems only build it for development.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
