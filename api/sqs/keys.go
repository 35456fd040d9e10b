package sqs

import (
	"bufio"
	"fmt"
	"strings"
)

// ParseKeys reads access keys as --sqs-keys gives them: "ID:SECRET"
// pairs separated by commas or newlines (a keys file holds one a line;
// blank lines and lines starting with # are skipped). An id may appear
// once; an empty id or secret is refused, as is a set with no keys (which
// would refuse every request without saying why).
func ParseKeys(text string) (StaticKeys, error) {
	keys := StaticKeys{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		for _, pair := range strings.Split(sc.Text(), ",") {
			pair = strings.TrimSpace(pair)
			if pair == "" || strings.HasPrefix(pair, "#") {
				continue
			}
			id, secret, ok := strings.Cut(pair, ":")
			switch {
			case !ok || id == "" || secret == "":
				return nil, fmt.Errorf("line %d: want ACCESS_KEY_ID:SECRET, got %d bytes without both", line, len(pair))
			case keys[id] != "":
				return nil, fmt.Errorf("line %d: access key id %q appears twice", line, id)
			}
			keys[id] = secret
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no ACCESS_KEY_ID:SECRET pairs")
	}
	return keys, nil
}
