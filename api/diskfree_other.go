//go:build !unix

package api

// FreeBytes cannot tell free space here; -1 turns the --min-free check off.
func FreeBytes(string) int64 { return -1 }
