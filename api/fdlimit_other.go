//go:build !unix

package api

import "errors"

// openFileLimit: no RLIMIT_NOFILE here, so --max-connections is not
// checked against one.
func openFileLimit() (int64, error) {
	return 0, errors.New("no open-file limit on this system")
}
