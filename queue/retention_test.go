package queue

import (
	"context"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	cases := []struct {
		name string
		// run gets a queue with 2s retention holding messages a and b,
		// and returns the counts it wants after the last Maintain.
		run  func(t *testing.T, b *Broker, q *Queue, clk *clock)
		want Counts
	}{
		{
			name: "removes ready messages past retention",
			run: func(t *testing.T, b *Broker, q *Queue, clk *clock) {
				clk.Advance(3 * time.Second)
				b.Maintain()
			},
			want: Counts{},
		},
		{
			name: "keeps messages younger than retention",
			run: func(t *testing.T, b *Broker, q *Queue, clk *clock) {
				clk.Advance(time.Second)
				b.Maintain()
			},
			want: Counts{Ready: 2, Total: 2},
		},
		{
			name: "leaves a leased message to its consumer",
			run: func(t *testing.T, b *Broker, q *Queue, clk *clock) {
				if _, err := q.Receive(context.Background(), ReceiveOptions{Visibility: time.Minute}); err != nil {
					t.Fatal(err)
				}
				clk.Advance(3 * time.Second)
				b.Maintain()
			},
			want: Counts{Leased: 1, Total: 1},
		},
		{
			name: "removes a message that was leased when retention passed it, once its lease runs out",
			run: func(t *testing.T, b *Broker, q *Queue, clk *clock) {
				if _, err := q.Receive(context.Background(), ReceiveOptions{Visibility: 4 * time.Second}); err != nil {
					t.Fatal(err)
				}
				clk.Advance(3 * time.Second)
				b.Maintain() // b goes; a is leased
				clk.Advance(4500 * time.Millisecond)
				b.Maintain() // a's lease ran out at 4s: it must go now
			},
			want: Counts{},
		},
		{
			name: "removes a message that was leased when retention passed it, once it is nacked",
			run: func(t *testing.T, b *Broker, q *Queue, clk *clock) {
				msgs, err := q.Receive(context.Background(), ReceiveOptions{Visibility: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				clk.Advance(3 * time.Second)
				b.Maintain()
				if _, err := q.Nack([]Receipt{msgs[0].Receipt}, NackOptions{}); err != nil {
					t.Fatal(err)
				}
				b.Maintain()
			},
			want: Counts{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			b := mustOpen(t, t.TempDir(), testOptions(clk))
			q := mustCreate(t, b, "q", ConfigUpdate{Retention: ptr(2 * time.Second)})
			enqueue(t, q, "a", "b")
			tc.run(t, b, q, clk)
			info, err := q.Info()
			if err != nil {
				t.Fatal(err)
			}
			if info.Counts != tc.want {
				t.Fatalf("counts %+v, want %+v", info.Counts, tc.want)
			}
		})
	}
}
