package api

import (
	"strings"
	"testing"
)

func TestConnectionLimitErrorSaysWhatToChange(t *testing.T) {
	t.Run("names the limit to raise and the cap that would fit", func(t *testing.T) {
		msg := (&ConnectionLimitError{Want: 1000, Limit: 200, FilesOpen: 20, Reserve: 69}).Error()
		for _, want := range []string{"--max-connections 1000", "ulimit -n is 200", "20 files open", "69 more kept in reserve",
			"at least 1089", "ulimit -n 1089", "LimitNOFILE=1089", "lower --max-connections to 111"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q: %s", want, msg)
			}
		}
	})
	t.Run("suggests no cap when none fits", func(t *testing.T) {
		msg := (&ConnectionLimitError{Want: 10, Limit: 80, FilesOpen: 20, Reserve: 69}).Error()
		if strings.Contains(msg, "lower --max-connections") || !strings.Contains(msg, "ulimit -n 99") {
			t.Errorf("message: %s", msg)
		}
	})
}
