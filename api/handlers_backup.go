package api

import (
	"net/http"
	"time"
)

// backupWriteTimeout is how long one write of a backup may block: the
// archive is as big as the data directory, so the server's WriteTimeout
// (sized for a long poll) cannot bound all of it.
const backupWriteTimeout = time.Minute

// backup streams queue.Broker.Backup as the reply: a tar archive. An
// error before the first byte is an ordinary error reply; one after it
// cuts the connection, so the client sees a truncated archive (a tar
// reader's unexpected EOF), never a short one that looks whole.
func (s *Server) backup(w http.ResponseWriter, r *http.Request, _ target) error {
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Cache-Control", "no-store")
	bw := &backupWriter{w: w, rc: http.NewResponseController(w)}
	rep, err := s.b.Backup(bw)
	if err != nil {
		if bw.n == 0 {
			return err
		}
		s.cfg.Logger.Error("api: backup failed mid-stream; the connection is cut", "err", err, "bytes", bw.n)
		panic(http.ErrAbortHandler)
	}
	s.cfg.Logger.Info("api: backup streamed", "queues", rep.Queues, "topics", rep.Topics, "subscriptions", rep.Subscriptions,
		"files", rep.Files, "bytes", rep.Bytes, "skipped", rep.Skipped)
	return nil
}

// backupWriter counts what went out and gives each write its own
// deadline.
type backupWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	n  int64
}

func (b *backupWriter) Write(p []byte) (int, error) {
	b.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout)) // not every writer has deadlines: then the server's holds
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}
