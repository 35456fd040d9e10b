package queue_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spoolq/spool/queue"
)

// The embedded API: open a broker on a directory, create a queue, send,
// receive with a lease, ack.
func Example() {
	dir, _ := os.MkdirTemp("", "spool-example")
	defer os.RemoveAll(dir)

	b, err := queue.Open(dir, queue.Options{})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	visibility := time.Minute
	q, _, err := b.Create("emails", queue.ConfigUpdate{VisibilityTimeout: &visibility})
	if err != nil {
		panic(err)
	}
	ids, err := q.Enqueue([]queue.NewMessage{{Body: []byte(`{"to":"ada@example.com"}`)}})
	if err != nil {
		panic(err)
	}
	fmt.Println("enqueued", ids)

	msgs, err := q.Receive(context.Background(), queue.ReceiveOptions{Max: 10, Wait: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	for _, m := range msgs {
		fmt.Printf("got %s (receipt %s, attempt %d)\n", m.Body, m.Receipt, m.Attempts)
	}
	errs, err := q.Ack([]queue.Receipt{msgs[0].Receipt})
	fmt.Println("acked:", err == nil && errs[0] == nil)
	// Output:
	// enqueued [1]
	// got {"to":"ada@example.com"} (receipt 1.1, attempt 1)
	// acked: true
}
