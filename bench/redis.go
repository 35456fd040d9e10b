package bench

import (
	"bytes"
	"context"
	"fmt"
)

// redis-lpush speaks RESP (the redis protocol) itself: the workers send
// one command, built once (respCommand), and read one reply line, so a
// few lines over lineConn do what a client library would, with nothing of
// the library's own in the figures.

// respCommand encodes a command as RESP: an array of bulk strings.
func respCommand(args ...string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n", len(a))
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// redisDel deletes key on the redis server at addr: redis-lpush's list,
// emptied before the run (so the list and its memory start from nothing)
// and after it. Its reply is an integer (":1" or ":0"), or "-" and an
// error.
func redisDel(ctx context.Context, addr, key string) error {
	c, err := dialLine(ctx, addr)
	if err != nil {
		return err
	}
	defer c.close()
	reply, err := c.roundTrip(ctx, respCommand("DEL", key))
	if err != nil {
		return fmt.Errorf("DEL %s: %w", key, err)
	}
	if !bytes.HasPrefix(reply, []byte(":")) {
		return unexpectedReply("DEL "+key, reply)
	}
	return nil
}
