package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/api/beanstalk"
	"github.com/spoolq/spool/api/sqs"
	"github.com/spoolq/spool/queue"
)

type serveFlags struct {
	addr            string
	data            string
	token           string
	allowAnonymous  bool
	tokenFile       string
	keys            string
	sync            string
	syncInterval    time.Duration
	maxMessageBytes int
	maxBatch        int
	maxWait         time.Duration
	maxDisk         int64
	minFree         int64
	maxConnections  int
	// maxConnectionsSet: --max-connections was given (flag or env), so it
	// is refused rather than lowered when it does not fit the fd limit.
	maxConnectionsSet bool
	logLevel          string
	logFormat         string
	tlsCert, tlsKey   string
	miniqueue         bool
	beanstalkAddr     string
	beanstalkMaxConns int
	sqsKeys           string
}

// Defaults that other commands share: check reads the same data
// directory, and recv's help states the same long-poll bound.
const (
	defaultData    = "./spool-data"
	defaultMaxWait = 20 * time.Second
)

const serveHelp = `Run the spool server.

With no flags it listens on 127.0.0.1:7070 and keeps its data in
./spool-data. Every flag can also be set by an environment variable:
--max-batch is SPOOL_MAX_BATCH, and so on, except --addr, which is
SPOOL_LISTEN: SPOOL_ADDR is the address the client commands call, so
exporting it for them never moves the server. A flag given on the command
line wins over its variable.

Sizes (--max-message-bytes, --max-disk, --min-free) are bytes, or a
number with K, M, G or T (powers of 1024), optionally followed by iB or B:
1048576, 1M and 1MiB are the same.

Durability (--sync):
  always    (default) every 2xx for enqueue, ack, nack, fail, purge or a
            config change means the change is fsynced; concurrent requests
            share fsyncs, so throughput grows with concurrency.
  interval  fsync every --sync-interval: a power cut can lose that much
            acknowledged data (a crash of the process loses nothing).
  none      never fsync except at rotation and shutdown: faster, and a
            power cut can lose acknowledged data.

Connections (--max-connections):
  At most this many client connections are open at once; one beyond it
  is answered 503 (code "unavailable", Retry-After: 1) and closed, so a
  client sees a refusal, not a hang. Each connection is a file
  descriptor, and so is every segment and state-log file the queues hold
  open, so at start the server checks the open-file limit (ulimit -n):
  the connections, the files the data directory holds open and a reserve
  (64 plus a quarter of those files, for new segments and queues) must
  fit under it. A --max-connections you set (or SPOOL_MAX_CONNECTIONS)
  that does not fit stops the server with exit status 2: raise ulimit -n
  (LimitNOFILE= in a systemd unit) or lower --max-connections. The
  default is lowered to fit instead, with a warning, so a plain
  'spool serve' starts anywhere.

beanstalkd protocol (--beanstalk-addr):
  A second listener that speaks beanstalkd's protocol over the same
  queues: a tube is the queue of its name, a job a message; put, delete,
  release, bury and kick answer once durable, as the HTTP API does.
  beanstalkd has no authentication, and neither has this listener: it
  must be a loopback address unless --allow-anonymous (a --token does not
  cover it). The largest job is --max-message-bytes.

API keys (--keys FILE):
  Beside --token (which may do anything), each client can have its own
  key, allowed only some calls: one key a line, NAME SCOPES sha256:HASH,
  where SCOPES is a comma-separated list of read, produce, consume or
  admin, each optionally :GLOB (the queue or topic names it covers; a
  subscription is TOPIC/SUB). 'spool keys add NAME --scope ...' makes a
  key: it prints the secret once and appends the line. A call outside the
  key's scopes is 403 forbidden; SIGHUP reads the file again.

Amazon SQS (--sqs-keys):
  The listener also speaks SQS's two protocols (AWS JSON 1.0 and the
  query protocol) on POST /, so the aws CLI, boto3 and the AWS SDKs work
  with --endpoint-url http://ADDR; an SQS queue is the spool queue of its
  name. With --sqs-keys, requests must be SigV4-signed with one of those
  keys. Without it, any signature is accepted, unless --token or --keys
  is set: then SQS requests are refused, since an SQS client cannot send
  the token. --sqs-keys names a file when one of that name exists (SIGHUP
  reads it again), else it is the pairs themselves.

Shutdown (SIGTERM or Ctrl-C): stop accepting, release long polls with
  503, give requests in flight 3s to finish, then close the connections
  still busy (a stalled upload was never acknowledged, so nothing
  acknowledged is lost), fsync and close the queues, exit 0.

Examples:
  spool serve
  spool serve --addr 0.0.0.0:7070 --token "$(cat /etc/spool/token)"
  spool serve --addr 0.0.0.0:7070 --keys /etc/spool/keys
  spool serve --max-disk 10G --min-free 512M --max-message-bytes 1M
  SPOOL_DATA=/var/lib/spool SPOOL_LISTEN=:7070 SPOOL_SYNC=interval spool serve
`

func serveCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var f serveFlags
	helpFor(fs, env, serveHelp)
	addrVar(fs, &f.addr, false, "addr", "127.0.0.1:7070", "address to listen on (env SPOOL_LISTEN, not SPOOL_ADDR: see above)")
	fs.SetAnnotation("addr", envAnnotation, []string{"SPOOL_LISTEN"})
	fs.StringVar(&f.data, "data", defaultData, "data directory")
	fs.StringVar(&f.token, "token", "", "require Authorization: Bearer <token> (all routes but /healthz)")
	fs.StringVar(&f.tokenFile, "token-file", "", "read --token from this file, one line (a systemd credential, a Docker secret)")
	fs.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "allow a non-loopback --addr without --token, and a non-loopback --beanstalk-addr")
	fs.StringVar(&f.sync, "sync", "always", "fsync policy: always, interval or none (see above)")
	fs.DurationVar(&f.syncInterval, "sync-interval", queue.DefaultSyncInterval, "fsync period for --sync=interval")
	sizeVar(fs, &f.maxMessageBytes, "max-message-bytes", queue.DefaultMaxMessageBytes, "largest message body (a size, see above)")
	fs.IntVar(&f.maxBatch, "max-batch", 1000, "most messages per batch enqueue, receive or receipt call")
	fs.DurationVar(&f.maxWait, "max-wait", defaultMaxWait, "longest long-poll wait a receive may ask for")
	sizeVar(fs, &f.maxDisk, "max-disk", 0, "disk quota for the data directory; enqueues beyond it get 507 (0: none)")
	sizeVar(fs, &f.minFree, "min-free", 32<<20, "free space kept in reserve: enqueues get 507 below it, so acks still work on a full disk (0: none)")
	fs.IntVar(&f.maxConnections, "max-connections", api.DefaultMaxConnections, "most client connections open at once; more get 503 (see above)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain): serve TLS, HTTP/2 by ALPN; with --tls-key; SIGHUP reloads both")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&f.miniqueue, "miniqueue", false, "also speak miniqueue's protocol: POST /publish/:topic, POST /subscribe/:topic (see the README)")
	fs.StringVar(&f.beanstalkAddr, "beanstalk-addr", "", "also speak beanstalkd's protocol on this address (127.0.0.1:11300 is its usual port; see above)")
	fs.IntVar(&f.beanstalkMaxConns, "beanstalk-max-connections", beanstalk.DefaultMaxConnections, "most beanstalkd-protocol connections open at once; more get OUT_OF_MEMORY")
	fs.StringVar(&f.keys, "keys", "", "API keys file: one NAME SCOPES sha256:HASH a line (spool keys add makes them; SIGHUP reloads it; see above)")
	fs.StringVar(&f.sqsKeys, "sqs-keys", "", "SQS access keys whose SigV4 signatures are accepted: ID:SECRET[,ID:SECRET...], or a file of one a line (see above)")
	return func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("serve takes no arguments, got %q", args)}
		}
		f.maxConnectionsSet = fs.Changed("max-connections") // applyEnv's Set counts as a change too
		return serve(env, f)
	}
}

// newLogger builds serve's logger; flagRef names the flags in errors.
func newLogger(w io.Writer, level, format string, flagRef func(string) string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("%s %q: want debug, info, warn or error", flagRef("log-level"), level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("%s %q: want text or json", flagRef("log-format"), format)}
}

// checkToken refuses a token no client could present. HTTP strips white
// space around a header value, so with a token of "abc " (a file read with
// its newline, say) every request gets 401; control and non-ASCII bytes are
// not carried reliably in a header either. The token itself is not echoed:
// it is a secret and may sit in a log.
func checkToken(token string) error {
	if strings.TrimSpace(token) != token {
		return usageError{"--token (or SPOOL_TOKEN) has leading or trailing white space, which HTTP strips from the Authorization header, so no client could present it: remove it (a token read from a file often ends in a newline; \"$(cat file)\" drops it)"}
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x20 || c > 0x7e {
			return usageError{fmt.Sprintf("--token (or SPOOL_TOKEN) has a control or non-ASCII byte (0x%02x at byte %d), which an HTTP header cannot carry reliably: use printable ASCII only (openssl rand -hex 32 makes one)", c, i)}
		}
	}
	return nil
}

// maxTokenFileBytes bounds what readTokenFile reads: a token is a line.
const maxTokenFileBytes = 4 << 10

// readTokenFile reads --token-file: the token is the file's first line,
// its line ending dropped (what echo, an editor or systemd-creds write);
// an empty one is an error, since it would turn authentication off.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	if len(b) > maxTokenFileBytes {
		return "", usageError{fmt.Sprintf("--token-file %s is over %d bytes: it should hold one token", path, maxTokenFileBytes)}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", usageError{fmt.Sprintf("--token-file %s holds no token on its first line", path)}
	}
	return line, nil
}

// checkExposure refuses to serve beyond loopback without a token: an open
// queue on a public address is a gift to anyone who finds it. addr is in
// host:port form (addrValue checked it); ref names where it came from.
func checkExposure(addr, ref, token string, keys, allowAnonymous bool) error {
	if token != "" || keys || allowAnonymous || loopbackHost(addr) {
		return nil
	}
	return usageError{fmt.Sprintf("refusing to listen on %s (%s) without a token: set --token (or SPOOL_TOKEN) or --keys so clients must authenticate, or pass --allow-anonymous if the network is trusted", addr, ref)}
}

// checkBeanstalkExposure refuses the beanstalkd protocol beyond loopback
// unless the network is trusted: the protocol has no authentication, so
// a token cannot guard it.
func checkBeanstalkExposure(addr, ref string, allowAnonymous bool) error {
	if allowAnonymous || loopbackHost(addr) {
		return nil
	}
	return usageError{fmt.Sprintf("refusing to serve the beanstalkd protocol on %s (%s): it has no authentication, so anyone who can reach it can put, read and delete jobs; listen on a loopback address, or pass --allow-anonymous if the network is trusted", addr, ref)}
}

// loopbackHost says whether addr (host:port) names this machine only.
func loopbackHost(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve checks the flags, runs an api.Service until env.ctx is done (or
// its listener fails) and stops it in order.
func serve(env *cmdEnv, f serveFlags) error {
	logger, err := newLogger(env.stderr, f.logLevel, f.logFormat, env.flagRef)
	if err != nil {
		return err
	}
	policy, err := queue.ParseSyncPolicy(f.sync)
	if err != nil {
		return usageError{env.flagRef("sync") + ": " + err.Error()}
	}
	if f.tokenFile != "" {
		if f.token != "" {
			return usageError{"give --token or --token-file, not both"}
		}
		if f.token, err = readTokenFile(f.tokenFile); err != nil {
			return err
		}
	}
	if err := checkToken(f.token); err != nil {
		return err
	}
	var keys *api.Keys
	if f.keys != "" {
		if keys, err = api.LoadKeys(f.keys); err != nil {
			return usageError{env.flagRef("keys") + ": " + err.Error()}
		}
	}
	if err := checkExposure(f.addr, env.flagRef("addr"), f.token, f.keys != "", f.allowAnonymous); err != nil {
		return err
	}
	if f.beanstalkAddr != "" {
		if _, _, err := net.SplitHostPort(f.beanstalkAddr); err != nil {
			return usageError{fmt.Sprintf("%s %q: want host:port: %v", env.flagRef("beanstalk-addr"), f.beanstalkAddr, err)}
		}
		if err := checkBeanstalkExposure(f.beanstalkAddr, env.flagRef("beanstalk-addr"), f.allowAnonymous); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		flag string
		bad  bool
		want string
	}{
		{"max-message-bytes", f.maxMessageBytes <= 0, "positive"},
		{"max-batch", f.maxBatch <= 0, "positive"},
		{"max-connections", f.maxConnections <= 0, "positive"},
		{"beanstalk-max-connections", f.beanstalkMaxConns <= 0, "positive"},
		{"sync-interval", f.syncInterval <= 0, "positive"},
		{"max-wait", f.maxWait < 0, "0 or more"}, // sizes cannot be negative: sizeValue refuses a sign
	} {
		if c.bad {
			return usageError{fmt.Sprintf("%s must be %s", env.flagRef(c.flag), c.want)}
		}
	}
	// An upgrade from when serve read SPOOL_ADDR must not move a server
	// without a word: a unit file that set it now listens elsewhere.
	if v, ok := os.LookupEnv("SPOOL_ADDR"); ok && v != f.addr {
		logger.Warn("spool: serve ignores SPOOL_ADDR, the address the client commands call; set SPOOL_LISTEN or --addr for the server's", "SPOOL_ADDR", v, "addr", f.addr)
	}
	sqsKeys, err := loadSQSKeys(f.sqsKeys, env.flagRef("sqs-keys"))
	if err != nil {
		return err
	}
	svc, err := api.Open(f.data, api.ServiceConfig{
		Addr: f.addr,
		Queue: queue.Options{
			Sync:            policy,
			SyncInterval:    f.syncInterval,
			MaxMessageBytes: f.maxMessageBytes,
		},
		API: api.Config{
			Token:           f.token,
			Keys:            keys,
			MaxMessageBytes: f.maxMessageBytes,
			MaxBatch:        f.maxBatch,
			MaxWait:         f.maxWait,
			MaxDisk:         f.maxDisk,
			MinFree:         f.minFree,
			SQSKeys:         sqsKeys,
		},
		MaxConnections:          f.maxConnections,
		ExplicitMaxConnections:  f.maxConnectionsSet,
		Logger:                  logger,
		TLSCert:                 f.tlsCert,
		TLSKey:                  f.tlsKey,
		Miniqueue:               f.miniqueue,
		BeanstalkAddr:           f.beanstalkAddr,
		BeanstalkMaxConnections: f.beanstalkMaxConns,
	})
	var tooMany *api.ConnectionLimitError
	if errors.As(err, &tooMany) {
		return exitStatus{2, err} // a usage error: the flag, or the ulimit, must change
	}
	if err != nil {
		return err
	}
	if env.listening != nil {
		env.listening(svc)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-svc.Done(): // the listener failed; Close says how
			return svc.Close()
		case <-env.ctx.Done():
			return svc.Close()
		case <-hup:
			reload(logger, svc, f, env.flagRef("sqs-keys"))
		}
	}
}

// reload is SIGHUP's work: the TLS certificate and the --sqs-keys file
// are read again; one that does not load leaves what is in use.
func reload(logger *slog.Logger, svc *api.Service, f serveFlags, keysRef string) {
	did := false
	if f.tlsCert != "" {
		did = true
		if err := svc.ReloadCertificate(); err != nil {
			logger.Error("spool: SIGHUP: the TLS certificate did not reload; the one in use stays", "err", err)
		} else {
			logger.Info("spool: SIGHUP: TLS certificate reloaded", "cert", f.tlsCert)
		}
	}
	if sqsKeysFile(f.sqsKeys) {
		did = true
		if keys, err := loadSQSKeys(f.sqsKeys, keysRef); err != nil {
			logger.Error("spool: SIGHUP: the SQS keys did not reload; the ones in use stay", "err", err)
		} else {
			svc.SetSQSKeys(keys)
			logger.Info("spool: SIGHUP: SQS keys reloaded", "file", f.sqsKeys, "keys", len(keys))
		}
	}
	if f.keys != "" {
		did = true
		if keys, err := api.LoadKeys(f.keys); err != nil {
			logger.Error("spool: SIGHUP: the API keys did not reload; the ones in use stay", "err", err)
		} else {
			svc.SetKeys(keys)
			logger.Info("spool: SIGHUP: API keys reloaded", "file", f.keys, "keys", keys.Len())
		}
	}
	if !did {
		logger.Info("spool: SIGHUP: nothing to reload (no --tls-cert, --keys or --sqs-keys file)")
	}
}

// sqsKeysFile says whether --sqs-keys names a file (else it holds the
// pairs themselves).
func sqsKeysFile(v string) bool {
	st, err := os.Stat(v)
	return v != "" && err == nil && st.Mode().IsRegular()
}

// loadSQSKeys reads --sqs-keys: the keys file it names, if one of that
// name exists, else the ID:SECRET pairs it holds. "" is no keys. Neither
// the pairs nor the file's lines are echoed in errors: they hold secrets.
func loadSQSKeys(v, ref string) (sqs.StaticKeys, error) {
	if v == "" {
		return nil, nil
	}
	text, from := v, ref
	if sqsKeysFile(v) {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, usageError{fmt.Sprintf("%s: %v", ref, err)}
		}
		text, from = string(b), fmt.Sprintf("%s file %s", ref, v)
	}
	keys, err := sqs.ParseKeys(text)
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s: %v", from, err)}
	}
	return keys, nil
}
