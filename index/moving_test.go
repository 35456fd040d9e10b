package index

import (
	"errors"
	"testing"
)

func TestMarkMoving(t *testing.T) {
	tb := NewTable()
	tb.Insert(1, 0, 0, 0)
	tb.Insert(2, 0, 0, 0)
	var te *TransitionError
	if err := tb.MarkMoving(1, 5); !errors.As(err, &te) {
		t.Fatalf("MarkMoving of a ready message = %v, want a TransitionError", err)
	}
	for _, ev := range []Event{{Type: EvLease, ID: 1, Attempt: 1, Time: 10}, {Type: EvDead, ID: 1}, {Type: EvMoving, ID: 1, After: 5}} {
		if err := tb.Apply(ev, 0); err != nil {
			t.Fatalf("Apply %+v: %v", ev, err)
		}
	}
	if got := tb.Moving(1); got != 5 {
		t.Fatalf("Moving(1) = %d, want 5", got)
	}
	if got := tb.Moving(2); got != 0 {
		t.Fatalf("Moving of a ready message = %d, want 0", got)
	}
	snap, err := DecodeSnapshot(EncodeSnapshot(nil, 3, tb))
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Table.Moving(1); got != 5 {
		t.Fatalf("Moving(1) after a snapshot round trip = %d, want 5", got)
	}
	if err := tb.Redrive(1); err != nil {
		t.Fatal(err)
	}
	if err := tb.Dead(1); err != nil {
		t.Fatal(err)
	}
	if got := tb.Moving(1); got != 0 {
		t.Fatalf("Moving after a redrive and a new death = %d, want 0 (a new move)", got)
	}
}
