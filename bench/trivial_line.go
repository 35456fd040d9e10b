package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// The trivial baseline of the beanstalkd and redis scenarios: a responder
// that reads each command the scenario's client sends and answers it with
// a fixed reply, touching no queue and no disk. Loaded by the scenario's
// own workers, its rate is what this client, this concurrency and this
// machine's loopback allow any server of the protocol: the ceiling the
// scenario's requests are measured against, as the net/http handler is
// for the HTTP scenarios.

// trivialLine runs the line-protocol baseline for d and returns its phase
// and latency histogram (see trivial).
func (r *runner) trivialLine(ctx context.Context, d time.Duration) (*phase, *Histogram, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	s := newScenario(r.cfg, "", ln.Addr().String(), r.epoch)
	var wg sync.WaitGroup
	withSide(ctx, sideServer, func(context.Context) {
		wg.Go(func() { serveTrivialLine(ln, protocolOf(r.cfg.Scenario), s.body, &wg) })
	})
	defer func() {
		ln.Close()
		s.close() // the responder's connections end at EOF
		wg.Wait()
	}()
	h := &Histogram{}
	return s.workers(true).run(ctx, r.cl, d, h, r.ticker("trivial "+trivialServer(r.cfg.Scenario)+" baseline", d, "requests")), h, nil
}

// trivialServer names the trivial baseline's server for a scenario.
func trivialServer(scenario string) string {
	switch protocolOf(scenario) {
	case protoBeanstalk:
		return "beanstalkd-protocol responder"
	case protoRedis:
		return "RESP responder"
	}
	return "net/http handler"
}

// serveTrivialLine accepts connections on ln until it is closed and
// answers each with the trivial responder of proto; body is what a
// reserve hands out. Every goroutine it starts is counted in wg.
func serveTrivialLine(ln net.Listener, proto protocol, body []byte, wg *sync.WaitGroup) {
	reserved := trivialReserved(body)
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer nc.Close()
			br, bw := bufio.NewReaderSize(nc, lineBuffer), bufio.NewWriterSize(nc, lineBuffer)
			answer := func() error { return answerBeanstalk(br, bw, reserved) }
			if proto == protoRedis {
				answer = func() error { return answerRESP(br, bw) }
			}
			for answer() == nil {
				// As spool's listener does: one write for what arrived
				// together.
				if br.Buffered() == 0 && bw.Flush() != nil {
					return
				}
			}
			bw.Flush() // the replies before what it could not read
		})
	}
}

// trivialReserved is the responder's reply to every reserve: job 1, with
// body.
func trivialReserved(body []byte) []byte {
	return fmt.Appendf(nil, "RESERVED 1 %d\r\n%s\r\n", len(body), body)
}

// errTrivialInput is a command the trivial responder does not take: the
// connection ends (only the bench's own client talks to it).
var errTrivialInput = errors.New("bench: the trivial responder cannot read this command")

// readLine reads one "\r\n"-ended line, without its end.
func readLine(br *bufio.Reader) ([]byte, error) {
	l, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	l, ok := bytes.CutSuffix(l, []byte("\r\n"))
	if !ok {
		return nil, errTrivialInput
	}
	return l, nil
}

// skipData skips the n bytes (field, in decimal) of a put's job or a RESP
// bulk string, and the two of the "\r\n" after them.
func skipData(br *bufio.Reader, field []byte) error {
	n, err := strconv.Atoi(string(field))
	if err != nil || n < 0 {
		return errTrivialInput
	}
	_, err = br.Discard(n + 2)
	return err
}

// answerBeanstalk answers one beanstalkd command of the bench's: use,
// watch, ignore, put, reserve-with-timeout and delete, each as beanstalkd
// answers it when it succeeds (every reserve gets job 1 with body).
func answerBeanstalk(br *bufio.Reader, bw *bufio.Writer, reserved []byte) error {
	l, err := readLine(br)
	if err != nil {
		return err
	}
	verb, rest, _ := bytes.Cut(l, []byte{' '})
	switch string(verb) {
	case "put":
		if err := skipData(br, rest[bytes.LastIndexByte(rest, ' ')+1:]); err != nil {
			return err
		}
		bw.WriteString("INSERTED 1\r\n")
	case "reserve-with-timeout":
		bw.Write(reserved)
	case "delete":
		bw.WriteString("DELETED\r\n")
	case "use":
		bw.WriteString("USING ")
		bw.Write(rest)
		bw.WriteString("\r\n")
	case "watch", "ignore":
		bw.WriteString("WATCHING 1\r\n")
	default:
		bw.WriteString("UNKNOWN_COMMAND\r\n")
	}
	return nil
}

// answerRESP reads one RESP command (an array of bulk strings, as
// respCommand writes it) and answers it with the integer 1, LPUSH's reply
// for a new list of one.
func answerRESP(br *bufio.Reader, bw *bufio.Writer) error {
	l, err := readLine(br)
	if err != nil {
		return err
	}
	n, ok := bytes.CutPrefix(l, []byte{'*'})
	args, err := strconv.Atoi(string(n))
	if !ok || err != nil || args < 1 {
		return errTrivialInput
	}
	for range args {
		l, err := readLine(br)
		if err != nil {
			return err
		}
		size, ok := bytes.CutPrefix(l, []byte{'$'})
		if !ok {
			return errTrivialInput
		}
		if err := skipData(br, size); err != nil {
			return err
		}
	}
	bw.WriteString(":1\r\n")
	return nil
}
