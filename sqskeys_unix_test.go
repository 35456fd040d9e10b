//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestServeReloadsSQSKeysOnSIGHUP runs `spool serve --sqs-keys FILE`,
// checks a request signed by the file's key is served and one by another
// is not, replaces the file, sends SIGHUP and waits for the new key to be
// the one served.
func TestServeReloadsSQSKeysOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "sqs-keys")
	if err := os.WriteFile(keys, []byte("AKIDOLD:old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBinary(t, buildSpool(t), filepath.Join(dir, "data"), "--sqs-keys", keys)
	served := func(id, secret string) error {
		c := awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + s.addr), RetryMaxAttempts: 1,
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
			})})
		_, err := c.ListQueues(context.Background(), &awssqs.ListQueuesInput{})
		return err
	}
	if err := served("AKIDOLD", "old-secret"); err != nil {
		t.Fatalf("the file's key: %v", err)
	}
	if err := served("AKIDNEW", "new-secret"); err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("a key not in the file: %v", err)
	}
	if err := os.WriteFile(keys, []byte("AKIDNEW:new-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); served("AKIDNEW", "new-secret") != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the new key is not served 10s after SIGHUP\n%s", s.logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the server with a deadline
	}
	if err := served("AKIDOLD", "old-secret"); err == nil {
		t.Fatal("the old key is still served after the reload")
	}
	// A file that no longer parses leaves the keys in use.
	if err := os.WriteFile(keys, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, "SQS keys did not reload")
	if err := served("AKIDNEW", "new-secret"); err != nil {
		t.Fatalf("a bad file dropped the keys in use: %v", err)
	}
	if strings.Contains(s.logs.String(), "secret") {
		t.Fatalf("the log shows a secret:\n%s", s.logs.String())
	}
	s.stop(t)
}
