// Package crashtest is the child-process harness of spool's SIGKILL crash
// tests. It owns running a named test of the current test binary as a child
// process, killing it with SIGKILL at a random moment after its first line
// of output, and returning what it wrote ([Kill]), and the child's side of
// that contract ([Child], [Die]). What the child does, what its lines mean
// and what must hold after the kill stay in each package's crash test.
//
// The child is the same test binary, run with -test.run naming one test
// that starts with [Child]: outside Kill, where the parent's environment
// variable is unset, the test skips itself. The child's stdin is a pipe the
// parent holds open until it has reaped the child, and Child makes the
// child exit when it reads EOF there, so a child never outlives its parent.
package crashtest
