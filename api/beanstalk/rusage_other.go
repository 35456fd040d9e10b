//go:build !unix

package beanstalk

import "time"

// rusage is not measured here: stats reports 0.
func rusage() (user, system time.Duration) { return 0, 0 }
