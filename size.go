package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// sizeValue is a flag holding a number of bytes, written as plain bytes
// (1048576) or with a unit: K, M, G or T, powers of 1024, optionally
// followed by "iB" or "B" (512K, 512KiB and 512KB are all 524288), in
// either case, with or without a space. A size is a whole, non-negative
// number of bytes; anything else is refused, and pflag (or applyEnv)
// names the flag or variable it was given to.
//
// It is generic because some sizes are ints (a message's bytes, used as
// a length) and some int64s (a disk quota): on 32-bit ARM an int holds at
// most 2 GiB, and a size that does not fit is refused rather than wrapped.
type sizeValue[T ~int | ~int64] struct{ p *T }

var _ pflag.Value = sizeValue[int]{}

// sizeVar defines a size flag stored in p, with value as its default.
func sizeVar[T ~int | ~int64](fs *pflag.FlagSet, p *T, name string, value T, usage string) {
	*p = value
	fs.Var(sizeValue[T]{p}, name, usage)
}

// sizeUnits are the multipliers of the unit letters.
var sizeUnits = map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}

// errSizeSyntax says what a size looks like, for any value that is not one.
var errSizeSyntax = errors.New(`want a size in bytes, like 1048576, 512K, 1M or 1GiB (K, M, G, T are powers of 1024; "iB" or "B" may follow)`)

// parseSize parses a size as sizeValue documents it.
func parseSize(s string) (int64, error) {
	text := strings.ToUpper(strings.TrimSpace(s))
	digits := len(text) - len(strings.TrimLeft(text, "0123456789"))
	if digits == 0 {
		return 0, errSizeSyntax
	}
	n, err := strconv.ParseInt(text[:digits], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is too large", s)
	}
	unit := strings.TrimSpace(text[digits:])
	mult := int64(1)
	switch {
	case unit == "" || unit == "B":
	case len(unit) >= 1 && sizeUnits[unit[0]] != 0 && (len(unit) == 1 || unit[1:] == "B" || unit[1:] == "IB"):
		mult = sizeUnits[unit[0]]
	default:
		return 0, errSizeSyntax
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return n * mult, nil
}

// formatSize writes n with the largest unit that divides it exactly, so
// the defaults read as 256KiB and 32MiB in --help and parse back unchanged.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (v sizeValue[T]) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%s is too large for this machine (%d-bit)", s, strconv.IntSize)
	}
	*v.p = T(n)
	return nil
}

func (v sizeValue[T]) String() string {
	if v.p == nil {
		return "0"
	}
	return formatSize(int64(*v.p))
}

func (v sizeValue[T]) Type() string { return "size" }
