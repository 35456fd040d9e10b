package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/spoolq/spool/log"
)

// Config is a queue's configuration.
type Config struct {
	// VisibilityTimeout is the lease length when Receive gives none.
	VisibilityTimeout time.Duration
	// MaxAttempts is how many times a message is delivered before it goes dead.
	MaxAttempts int
	// DeadLetterQueue, if set, receives messages that go dead (when it
	// exists); otherwise they stay here in state dead.
	DeadLetterQueue string
	// MaxLength caps ready+delayed+leased+dead messages; 0 = unlimited.
	MaxLength int
	// Retention drops messages (not leased ones) older than this; 0 = keep.
	Retention time.Duration
	// Delay is the default delay of a new message.
	Delay time.Duration
}

// Limits on config values.
const (
	MaxVisibility  = 12 * time.Hour
	MaxDelay       = 7 * 24 * time.Hour
	MaxMaxAttempts = 1000
	MaxNameLength  = 80
)

// DefaultConfig is what a queue created with no settings gets.
var DefaultConfig = Config{VisibilityTimeout: 30 * time.Second, MaxAttempts: 5}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,80}$`)

// ValidName reports whether name can name a queue: [A-Za-z0-9_.-]{1,80},
// not starting with a dot (a name becomes a directory, so never . or ..).
func ValidName(name string) bool {
	return nameRE.MatchString(name) && name[0] != '.'
}

func checkName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: %q (use 1-80 of A-Z a-z 0-9 _ . -, not starting with a dot)", ErrInvalidName, name)
	}
	return nil
}

// ConfigUpdate changes only the fields that are set.
type ConfigUpdate struct {
	VisibilityTimeout *time.Duration
	MaxAttempts       *int
	DeadLetterQueue   *string
	MaxLength         *int
	Retention         *time.Duration
	Delay             *time.Duration
}

// apply returns c with u's fields set, validated.
func (c Config) apply(u ConfigUpdate, self string) (Config, error) {
	if u.VisibilityTimeout != nil {
		c.VisibilityTimeout = *u.VisibilityTimeout
	}
	if u.MaxAttempts != nil {
		c.MaxAttempts = *u.MaxAttempts
	}
	if u.DeadLetterQueue != nil {
		c.DeadLetterQueue = *u.DeadLetterQueue
	}
	if u.MaxLength != nil {
		c.MaxLength = *u.MaxLength
	}
	if u.Retention != nil {
		c.Retention = *u.Retention
	}
	if u.Delay != nil {
		c.Delay = *u.Delay
	}
	return c, c.validate(self)
}

func (c Config) validate(self string) error {
	switch {
	case c.VisibilityTimeout <= 0 || c.VisibilityTimeout > MaxVisibility:
		return fmt.Errorf("%w: visibility_timeout %s must be between 1ns and %s", ErrInvalid, c.VisibilityTimeout, MaxVisibility)
	case c.MaxAttempts < 1 || c.MaxAttempts > MaxMaxAttempts:
		return fmt.Errorf("%w: max_attempts %d must be between 1 and %d", ErrInvalid, c.MaxAttempts, MaxMaxAttempts)
	case c.DeadLetterQueue != "" && !ValidName(c.DeadLetterQueue):
		return fmt.Errorf("%w: dead_letter_queue %q is not a valid queue name", ErrInvalid, c.DeadLetterQueue)
	case c.DeadLetterQueue == self:
		return fmt.Errorf("%w: a queue cannot be its own dead-letter queue", ErrInvalid)
	case c.MaxLength < 0:
		return fmt.Errorf("%w: max_length %d is negative", ErrInvalid, c.MaxLength)
	case c.Retention < 0:
		return fmt.Errorf("%w: retention %s is negative", ErrInvalid, c.Retention)
	case c.Delay < 0 || c.Delay > MaxDelay:
		return fmt.Errorf("%w: delay %s must be between 0 and %s", ErrInvalid, c.Delay, MaxDelay)
	}
	return nil
}

// configJSON is Config's JSON form in queue.json: durations as Go
// duration strings, as the HTTP API's QueueInfo writes them too.
type configJSON struct {
	VisibilityTimeout string `json:"visibility_timeout"`
	MaxAttempts       int    `json:"max_attempts"`
	DeadLetterQueue   string `json:"dead_letter_queue"`
	MaxLength         int    `json:"max_length"`
	Retention         string `json:"retention"`
	Delay             string `json:"delay"`
	// Serial is queue.json's (queueFile), absent in one that has none
	// yet (every one written before serials).
	Serial uint32 `json:"serial,omitempty"`
	Label  string `json:"label,omitempty"`
	// Attributes are queueFile's (Queue.SetAttributes), absent when none.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Ordered is queueFile's (CreateOptions.Ordered), absent when false.
	Ordered bool `json:"ordered,omitempty"`
}

// MarshalJSON writes durations as Go duration strings ("30s").
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(configJSON{
		VisibilityTimeout: c.VisibilityTimeout.String(),
		MaxAttempts:       c.MaxAttempts,
		DeadLetterQueue:   c.DeadLetterQueue,
		MaxLength:         c.MaxLength,
		Retention:         c.Retention.String(),
		Delay:             c.Delay.String(),
	})
}

// UnmarshalJSON reads what MarshalJSON writes; every field is required.
func (c *Config) UnmarshalJSON(b []byte) error {
	var j configJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err error
	parse := func(s string) time.Duration {
		d, perr := time.ParseDuration(s)
		if perr != nil && err == nil {
			err = perr
		}
		return d
	}
	*c = Config{
		VisibilityTimeout: parse(j.VisibilityTimeout),
		MaxAttempts:       j.MaxAttempts,
		DeadLetterQueue:   j.DeadLetterQueue,
		MaxLength:         j.MaxLength,
		Retention:         parse(j.Retention),
		Delay:             parse(j.Delay),
	}
	return err
}

// configFile is the envelope of every config file spool writes
// (queue.json, topic.json, sub.json): the config with a format version and
// a checksum of the config's canonical (compact) encoding.
type configFile struct {
	Version  int             `json:"version"`
	Config   json.RawMessage `json:"config"`
	Checksum uint32          `json:"crc32c"`
}

const configFileVersion = 1

// encodeConfigFile returns the file holding config v (a type whose JSON
// form is its config).
func encodeConfigFile(v any) ([]byte, error) {
	cfg, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(configFile{Version: configFileVersion, Config: cfg, Checksum: log.Checksum(cfg)}, "", "  ")
}

// errConfigFile marks a config file that does not decode: retrying the
// open cannot help.
var errConfigFile = errors.New("config file")

// DecodeConfigFile verifies a config file spool wrote (queue.json,
// topic.json, sub.json: a version, the config, a CRC-32C of the config's
// compact JSON) and decodes its config into v. A file that does not
// verify or decode is an error, and v is then not to be used.
func DecodeConfigFile(b []byte, v any) error {
	if err := decodeConfigFileText(b, v); err != nil {
		return fmt.Errorf("%w: %w", errConfigFile, err)
	}
	return nil
}

func decodeConfigFileText(b []byte, v any) error {
	var f configFile
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f.Version != configFileVersion {
		return fmt.Errorf("version %d (this build reads %d)", f.Version, configFileVersion)
	}
	// The file is indented for people; the checksum is over the compact form.
	var compact bytes.Buffer
	if err := json.Compact(&compact, f.Config); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if got := log.Checksum(compact.Bytes()); got != f.Checksum {
		return fmt.Errorf("crc32c %d, want %d", got, f.Checksum)
	}
	if err := json.Unmarshal(f.Config, v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// queueFile is what queue.json holds: the queue's config, its number
// (Queue.Serial; 0 until it has one), its label and its attributes.
type queueFile struct {
	Config     Config
	Serial     uint32
	Label      string
	Attributes map[string]string
	Ordered    bool
}

// MarshalJSON writes the config's fields and the rest side by side; a
// queue with no serial, label or attributes writes its config alone, as
// before any of them existed.
func (f queueFile) MarshalJSON() ([]byte, error) {
	c, err := f.Config.MarshalJSON()
	if err != nil || (f.Serial == 0 && f.Label == "" && len(f.Attributes) == 0 && !f.Ordered) {
		return c, err
	}
	var j configJSON
	if err := json.Unmarshal(c, &j); err != nil {
		return nil, err
	}
	j.Serial, j.Label, j.Attributes, j.Ordered = f.Serial, f.Label, f.Attributes, f.Ordered
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *queueFile) UnmarshalJSON(b []byte) error {
	var extra struct {
		Serial     uint32            `json:"serial"`
		Label      string            `json:"label"`
		Attributes map[string]string `json:"attributes"`
		Ordered    bool              `json:"ordered"`
	}
	if err := json.Unmarshal(b, &extra); err != nil {
		return err
	}
	if err := checkQueueAttributes(extra.Attributes); err != nil {
		return err
	}
	f.Serial, f.Label, f.Attributes, f.Ordered = extra.Serial, extra.Label, extra.Attributes, extra.Ordered
	return f.Config.UnmarshalJSON(b)
}

func decodeQueueFile(b []byte) (queueFile, error) {
	var f queueFile
	if err := DecodeConfigFile(b, &f); err != nil {
		return queueFile{}, err
	}
	return f, nil
}
