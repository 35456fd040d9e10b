package faultfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/spoolq/spool/log"
)

const rw = os.O_RDWR | os.O_CREATE

// create makes name (and its directory) with data, syncing the file and/or
// its directory as asked; the file is closed afterwards.
func create(t *testing.T, f *FS, name, data string, syncFile, syncDir bool) {
	t.Helper()
	must(t, f.MkdirAll(filepath.Dir(name), 0o755))
	h, err := f.OpenFile(name, rw|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if syncFile {
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if syncDir {
		if err := f.SyncDir(filepath.Dir(name)); err != nil {
			t.Fatal(err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, f *FS, name string) log.File {
	t.Helper()
	h, err := f.OpenFile(name, rw, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// absent marks a path that must not exist after the cut.
const absent = "\x00absent"

func TestPowerCut(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *FS)
		want map[string]string // path -> bytes after the cut, or absent
	}{
		{
			name: "unsynced write is lost at power cut",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "old", true, true)
				h := open(t, f, "/d/a")
				_, err := h.WriteAt([]byte("NEW!"), 0)
				must(t, err)
			},
			want: map[string]string{"/d/a": "old"},
		},
		{
			name: "synced write survives",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "old", true, true)
				h := open(t, f, "/d/a")
				_, err := h.WriteAt([]byte("NEW!"), 0)
				must(t, err)
				must(t, h.Sync())
			},
			want: map[string]string{"/d/a": "NEW!"},
		},
		{
			name: "write after the last sync is lost but the synced prefix stays",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "", true, true)
				h := open(t, f, "/d/a")
				_, err := h.WriteAt([]byte("abc"), 0)
				must(t, err)
				must(t, h.Sync())
				_, err = h.WriteAt([]byte("def"), 3)
				must(t, err)
			},
			want: map[string]string{"/d/a": "abc"},
		},
		{
			name: "create without dir sync vanishes",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "data", true, false)
			},
			want: map[string]string{"/d/a": absent},
		},
		{
			name: "create with dir sync but no file sync leaves an empty file",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "data", false, true)
			},
			want: map[string]string{"/d/a": ""},
		},
		{
			name: "rename without dir sync is undone",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/old", "synced", true, true)
				create(t, f, "/d/new", "previous", true, true)
				must(t, f.Rename("/d/old", "/d/new"))
			},
			want: map[string]string{"/d/old": "synced", "/d/new": "previous"},
		},
		{
			name: "rename without dir sync onto a fresh name leaves only the old name",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/old", "synced", true, true)
				must(t, f.Rename("/d/old", "/d/new"))
			},
			want: map[string]string{"/d/old": "synced", "/d/new": absent},
		},
		{
			name: "rename with dir sync survives",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/old", "synced", true, true)
				create(t, f, "/d/new", "previous", true, true)
				must(t, f.Rename("/d/old", "/d/new"))
				must(t, f.SyncDir("/d"))
			},
			want: map[string]string{"/d/old": absent, "/d/new": "synced"},
		},
		{
			name: "synced then renamed file shows its synced bytes under the old name",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/tmp", "", true, true)
				h := open(t, f, "/d/tmp")
				_, err := h.WriteAt([]byte("synced"), 0)
				must(t, err)
				must(t, h.Sync())
				must(t, f.Rename("/d/tmp", "/d/final"))
				_, err = h.WriteAt([]byte("!"), 6) // not synced
				must(t, err)
			},
			want: map[string]string{"/d/tmp": "synced", "/d/final": absent},
		},
		{
			name: "cross-directory rename with only the destination synced leaves both names",
			run: func(t *testing.T, f *FS) {
				must(t, f.MkdirAll("/b", 0o755))
				create(t, f, "/a/x", "x", true, true)
				must(t, f.Rename("/a/x", "/b/x"))
				must(t, f.SyncDir("/b"))
			},
			want: map[string]string{"/a/x": "x", "/b/x": "x"},
		},
		{
			name: "cross-directory rename with only the source synced loses the file",
			run: func(t *testing.T, f *FS) {
				must(t, f.MkdirAll("/b", 0o755))
				create(t, f, "/a/x", "x", true, true)
				must(t, f.Rename("/a/x", "/b/x"))
				must(t, f.SyncDir("/a"))
			},
			want: map[string]string{"/a/x": absent, "/b/x": absent},
		},
		{
			name: "remove without dir sync is undone",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "keep", true, true)
				must(t, f.Remove("/d/a"))
			},
			want: map[string]string{"/d/a": "keep"},
		},
		{
			name: "remove with dir sync survives",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "keep", true, true)
				must(t, f.Remove("/d/a"))
				must(t, f.SyncDir("/d"))
			},
			want: map[string]string{"/d/a": absent},
		},
		{
			name: "removeall without dir sync brings the subtree back",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/q/seg/1", "one", true, true)
				must(t, f.RemoveAll("/q/seg"))
			},
			want: map[string]string{"/q/seg/1": "one"},
		},
		{
			name: "removeall with dir sync survives",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/q/seg/1", "one", true, true)
				must(t, f.RemoveAll("/q/seg"))
				must(t, f.SyncDir("/q"))
			},
			want: map[string]string{"/q/seg/1": absent},
		},
		{
			name: "truncate without sync is undone",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "0123456789", true, true)
				must(t, open(t, f, "/d/a").Truncate(3))
			},
			want: map[string]string{"/d/a": "0123456789"},
		},
		{
			name: "truncate with sync survives",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "0123456789", true, true)
				h := open(t, f, "/d/a")
				must(t, h.Truncate(3))
				must(t, h.Sync())
			},
			want: map[string]string{"/d/a": "012"},
		},
		{
			name: "O_TRUNC without sync is undone",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/a", "keep", true, true)
				h, err := f.OpenFile("/d/a", os.O_RDWR|os.O_TRUNC, 0)
				must(t, err)
				if size, err := h.Size(); size != 0 || err != nil {
					t.Fatalf("Size after O_TRUNC = %d, %v; want 0", size, err)
				}
				must(t, h.Close())
			},
			want: map[string]string{"/d/a": "keep"},
		},
		{
			name: "mkdir is durable without dir sync",
			run: func(t *testing.T, f *FS) {
				must(t, f.MkdirAll("/x/y/z", 0o755))
				create(t, f, "/x/y/z/f", "f", true, true)
			},
			want: map[string]string{"/x/y/z/f": "f"},
		},
		{
			name: "WriteFile is durable at once",
			run: func(t *testing.T, f *FS) {
				must(t, f.MkdirAll("/d", 0o755))
				must(t, f.WriteFile("/d/a", []byte("setup")))
			},
			want: map[string]string{"/d/a": "setup"},
		},
		{
			name: "WriteFileAtomic survives a power cut",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/meta", "v1", true, true)
				must(t, log.WriteFileAtomic(f, "/d/meta", []byte("v2")))
			},
			want: map[string]string{"/d/meta": "v2"},
		},
		{
			name: "WriteFileAtomic whose dir sync fails keeps the old bytes",
			run: func(t *testing.T, f *FS) {
				create(t, f, "/d/meta", "v1", true, true)
				f.SetHook(FailNth(OpSyncDir, 1, ErrNoSpace))
				if err := log.WriteFileAtomic(f, "/d/meta", []byte("v2")); !errors.Is(err, ErrNoSpace) {
					t.Fatalf("WriteFileAtomic = %v, want ENOSPC", err)
				}
				f.SetHook(nil)
			},
			want: map[string]string{"/d/meta": "v1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			must(t, f.MkdirAll("/d", 0o755))
			tt.run(t, f)
			// Durable must predict exactly what the cut leaves.
			predicted := map[string]string{}
			for path := range tt.want {
				b, err := f.Durable(path)
				switch {
				case errors.Is(err, fs.ErrNotExist):
					predicted[path] = absent
				case err != nil:
					t.Fatalf("Durable(%s): %v", path, err)
				default:
					predicted[path] = string(b)
				}
			}
			f.PowerCut()
			for path, want := range tt.want {
				got := absent
				b, err := f.ReadFile(path)
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					t.Fatalf("ReadFile(%s): %v", path, err)
				default:
					got = string(b)
				}
				if got != want {
					t.Errorf("after power cut %s = %q, want %q", path, got, want)
				}
				if predicted[path] != got {
					t.Errorf("Durable(%s) before the cut = %q, but the cut left %q", path, predicted[path], got)
				}
			}
		})
	}
}

func TestPowerCutInvalidatesHandles(t *testing.T) {
	tests := []struct {
		name string
		use  func(h log.File) error
	}{
		{"ReadAt", func(h log.File) error { _, err := h.ReadAt(make([]byte, 1), 0); return err }},
		{"WriteAt", func(h log.File) error { _, err := h.WriteAt([]byte("x"), 0); return err }},
		{"Sync", func(h log.File) error { return h.Sync() }},
		{"Truncate", func(h log.File) error { return h.Truncate(0) }},
		{"Size", func(h log.File) error { _, err := h.Size(); return err }},
		{"Close", func(h log.File) error { return h.Close() }},
	}
	for _, tt := range tests {
		t.Run("handles opened before a power cut fail on "+tt.name, func(t *testing.T) {
			f := New()
			create(t, f, "/a", "data", true, true)
			old := open(t, f, "/a")
			f.PowerCut()
			err := tt.use(old)
			if !errors.Is(err, ErrPowerCut) || !errors.Is(err, os.ErrClosed) {
				t.Fatalf("%s on a pre-cut handle = %v, want ErrPowerCut wrapping os.ErrClosed", tt.name, err)
			}
			// The file itself is fine: a fresh handle works.
			if err := tt.use(open(t, f, "/a")); err != nil {
				t.Fatalf("%s on a post-cut handle = %v", tt.name, err)
			}
		})
	}
}

func TestHandleUseAfterCloseFails(t *testing.T) {
	f := New()
	h, err := f.OpenFile("/a", rw, 0o644)
	must(t, err)
	must(t, h.Close())
	if _, err := h.WriteAt([]byte("x"), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("WriteAt after Close = %v, want os.ErrClosed", err)
	}
	if err := h.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close = %v, want os.ErrClosed", err)
	}
}

func TestOpenFile(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		flag    int
		wantErr error // nil: must succeed
	}{
		{"O_EXCL on an existing file fails with ErrExist", "/d/a", rw | os.O_EXCL, fs.ErrExist},
		{"O_EXCL on a new name creates it", "/d/new", rw | os.O_EXCL, nil},
		{"opening a missing file without O_CREATE fails with ErrNotExist", "/d/missing", os.O_RDWR, fs.ErrNotExist},
		{"creating in a missing directory fails with ErrNotExist", "/nodir/a", rw, fs.ErrNotExist},
		{"a file used as a directory is not a directory", "/d/a/b", rw, nil /* checked below */},
		{"opening a directory fails", "/d", os.O_RDONLY, nil /* checked below */},
		{"a path above the root is invalid", "../a", rw, fs.ErrInvalid},
		{"relative and absolute paths name the same file", "d/a", os.O_RDONLY, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			create(t, f, "/d/a", "data", true, true)
			h, err := f.OpenFile(tt.path, tt.flag, 0o644)
			switch tt.path {
			case "/d/a/b", "/d":
				if err == nil {
					t.Fatalf("OpenFile(%s) succeeded, want an error", tt.path)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) {
					t.Fatalf("OpenFile(%s) = %v, want a *fs.PathError", tt.path, err)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("OpenFile(%s) = %v, want %v", tt.path, err, tt.wantErr)
				}
				return
			}
			must(t, err)
			defer h.Close()
			if tt.path == "d/a" {
				b := make([]byte, 4)
				if _, err := h.ReadAt(b, 0); err != nil || string(b) != "data" {
					t.Fatalf("ReadAt via relative path = %q, %v", b, err)
				}
			}
		})
	}
}

func TestAccessModes(t *testing.T) {
	f := New()
	create(t, f, "/a", "data", true, true)
	ro, err := f.OpenFile("/a", os.O_RDONLY, 0)
	must(t, err)
	defer ro.Close()
	if _, err := ro.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on an O_RDONLY handle succeeded")
	}
	if err := ro.Truncate(0); err == nil {
		t.Error("Truncate on an O_RDONLY handle succeeded")
	}
	wo, err := f.OpenFile("/a", os.O_WRONLY, 0)
	must(t, err)
	defer wo.Close()
	if _, err := wo.ReadAt(make([]byte, 1), 0); err == nil {
		t.Error("ReadAt on an O_WRONLY handle succeeded")
	}
	if b, _ := f.ReadFile("/a"); string(b) != "data" {
		t.Errorf("failed writes changed the file to %q", b)
	}
}

func TestReadAt(t *testing.T) {
	tests := []struct {
		name    string
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{"read inside the file returns all bytes and no error", 1, 3, "bcd", nil},
		{"read up to exactly the end returns no error", 2, 3, "cde", nil},
		{"read across the end is short with io.EOF", 3, 5, "de", io.EOF},
		{"read at the end returns io.EOF", 5, 1, "", io.EOF},
		{"read past the end returns io.EOF", 9, 1, "", io.EOF},
		{"empty read past the end is not an error", 9, 0, "", nil},
	}
	f := New()
	create(t, f, "/a", "abcde", true, true)
	h := open(t, f, "/a")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			n, err := h.ReadAt(p, tt.off)
			if string(p[:n]) != tt.want || err != tt.wantErr {
				t.Fatalf("ReadAt(%d bytes, %d) = %q, %v; want %q, %v", tt.n, tt.off, p[:n], err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestWriteAtPastEndZeroFills(t *testing.T) {
	f := New()
	h := open(t, f, "/a")
	_, err := h.WriteAt([]byte("ab"), 0)
	must(t, err)
	_, err = h.WriteAt([]byte("z"), 5)
	must(t, err)
	b, _ := f.ReadFile("/a")
	if want := "ab\x00\x00\x00z"; string(b) != want {
		t.Fatalf("file = %q, want %q", b, want)
	}
	if size, err := h.Size(); size != 6 || err != nil {
		t.Fatalf("Size = %d, %v; want 6", size, err)
	}
	must(t, h.Truncate(8))
	b, _ = f.ReadFile("/a")
	if want := "ab\x00\x00\x00z\x00\x00"; string(b) != want {
		t.Fatalf("after extending Truncate file = %q, want %q", b, want)
	}
	must(t, h.Truncate(1))
	must(t, h.Truncate(3))
	b, _ = f.ReadFile("/a")
	if want := "a\x00\x00"; string(b) != want {
		t.Fatalf("after shrink then grow file = %q, want %q (old bytes must not reappear)", b, want)
	}
}

func TestDirectories(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *FS)
	}{
		{"ReadDir lists files and subdirectories sorted", func(t *testing.T, f *FS) {
			create(t, f, "/d/b", "", false, false)
			create(t, f, "/d/a", "", false, false)
			must(t, f.MkdirAll("/d/c/deep", 0o755))
			got, err := f.ReadDir("/d")
			must(t, err)
			if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
				t.Fatalf("ReadDir = %v, want %v", got, want)
			}
		}},
		{"ReadDir of a missing directory fails with ErrNotExist", func(t *testing.T, f *FS) {
			if _, err := f.ReadDir("/nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("ReadDir = %v", err)
			}
		}},
		{"Remove of a non-empty directory fails", func(t *testing.T, f *FS) {
			create(t, f, "/d/a", "", false, false)
			if err := f.Remove("/d"); err == nil {
				t.Fatal("Remove of a non-empty directory succeeded")
			}
			if _, err := f.ReadFile("/d/a"); err != nil {
				t.Fatalf("file gone after failed Remove: %v", err)
			}
		}},
		{"Remove of an empty directory succeeds", func(t *testing.T, f *FS) {
			must(t, f.Remove("/d"))
			if _, err := f.ReadDir("/d"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("ReadDir after Remove = %v", err)
			}
		}},
		{"Remove of a missing file fails with ErrNotExist", func(t *testing.T, f *FS) {
			if err := f.Remove("/d/nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Remove = %v", err)
			}
		}},
		{"RemoveAll removes a subtree", func(t *testing.T, f *FS) {
			create(t, f, "/d/x/y/f", "", false, false)
			create(t, f, "/d/keep", "", false, false)
			must(t, f.RemoveAll("/d/x"))
			got, _ := f.ReadDir("/d")
			if want := []string{"keep"}; !slices.Equal(got, want) {
				t.Fatalf("ReadDir after RemoveAll = %v, want %v", got, want)
			}
		}},
		{"RemoveAll of a missing path is not an error", func(t *testing.T, f *FS) {
			must(t, f.RemoveAll("/nope/deeper"))
		}},
		{"Rename replaces the target", func(t *testing.T, f *FS) {
			create(t, f, "/d/a", "new", false, false)
			create(t, f, "/d/b", "old", false, false)
			must(t, f.Rename("/d/a", "/d/b"))
			if b, err := f.ReadFile("/d/b"); string(b) != "new" || err != nil {
				t.Fatalf("target = %q, %v", b, err)
			}
			if _, err := f.ReadFile("/d/a"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("source after Rename = %v", err)
			}
		}},
		{"Rename of a missing file fails with ErrNotExist", func(t *testing.T, f *FS) {
			if err := f.Rename("/d/nope", "/d/b"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Rename = %v", err)
			}
		}},
		{"Rename of a directory into itself fails", func(t *testing.T, f *FS) {
			must(t, f.MkdirAll("/d/sub", 0o755))
			if err := f.Rename("/d", "/d/sub/d"); err == nil {
				t.Fatal("Rename into own subtree succeeded")
			}
		}},
		{"Rename moves a directory with its contents", func(t *testing.T, f *FS) {
			create(t, f, "/d/a", "x", false, false)
			must(t, f.Rename("/d", "/e"))
			if b, err := f.ReadFile("/e/a"); string(b) != "x" || err != nil {
				t.Fatalf("moved file = %q, %v", b, err)
			}
		}},
		{"an open handle follows its file through a rename", func(t *testing.T, f *FS) {
			h := open(t, f, "/d/a")
			must(t, f.Rename("/d/a", "/d/b"))
			_, err := h.WriteAt([]byte("via handle"), 0)
			must(t, err)
			if b, _ := f.ReadFile("/d/b"); string(b) != "via handle" {
				t.Fatalf("renamed file = %q", b)
			}
		}},
		{"MkdirAll over a file fails", func(t *testing.T, f *FS) {
			create(t, f, "/d/a", "", false, false)
			if err := f.MkdirAll("/d/a/b", 0o755); err == nil {
				t.Fatal("MkdirAll through a file succeeded")
			}
		}},
		{"SyncDir of a missing directory fails with ErrNotExist", func(t *testing.T, f *FS) {
			if err := f.SyncDir("/nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("SyncDir = %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			must(t, f.MkdirAll("/d", 0o755))
			tt.run(t, f)
		})
	}
}

func TestHooks(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		op   Op
		run  func(f *FS, h log.File) error
		// check inspects the state after the failed call.
		check func(t *testing.T, f *FS)
	}{
		{"failed write changes nothing", OpWrite,
			func(f *FS, h log.File) error { _, err := h.WriteAt([]byte("XX"), 0); return err },
			func(t *testing.T, f *FS) {
				if b, _ := f.ReadFile("/d/a"); string(b) != "data" {
					t.Fatalf("file = %q", b)
				}
			}},
		{"failed sync makes nothing durable", OpSync,
			func(f *FS, h log.File) error {
				if _, err := h.WriteAt([]byte("XX"), 0); err != nil {
					return err
				}
				return h.Sync()
			},
			func(t *testing.T, f *FS) {
				if b, _ := f.Durable("/d/a"); string(b) != "data" {
					t.Fatalf("durable = %q", b)
				}
			}},
		{"failed rename leaves both names", OpRename,
			func(f *FS, h log.File) error { return f.Rename("/d/a", "/d/b") },
			func(t *testing.T, f *FS) {
				if _, err := f.ReadFile("/d/a"); err != nil {
					t.Fatal(err)
				}
			}},
		{"failed syncdir makes nothing durable", OpSyncDir,
			func(f *FS, h log.File) error {
				if err := f.Remove("/d/a"); err != nil {
					return err
				}
				return f.SyncDir("/d")
			},
			func(t *testing.T, f *FS) {
				if _, err := f.Durable("/d/a"); err != nil {
					t.Fatalf("removal became durable despite the failed SyncDir: %v", err)
				}
			}},
		{"failed truncate keeps the bytes", OpTruncate,
			func(f *FS, h log.File) error { return h.Truncate(0) },
			func(t *testing.T, f *FS) {
				if b, _ := f.ReadFile("/d/a"); string(b) != "data" {
					t.Fatalf("file = %q", b)
				}
			}},
		{"failed remove keeps the file", OpRemove,
			func(f *FS, h log.File) error { return f.Remove("/d/a") },
			func(t *testing.T, f *FS) {
				if _, err := f.ReadFile("/d/a"); err != nil {
					t.Fatal(err)
				}
			}},
		{"failed mkdir creates nothing", OpMkdir,
			func(f *FS, h log.File) error { return f.MkdirAll("/d/sub", 0o755) },
			func(t *testing.T, f *FS) {
				if _, err := f.ReadDir("/d/sub"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("ReadDir = %v", err)
				}
			}},
		{"failed open creates nothing", OpOpen,
			func(f *FS, h log.File) error { _, err := f.OpenFile("/d/new", rw, 0o644); return err },
			func(t *testing.T, f *FS) {
				if _, err := f.ReadFile("/d/new"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("ReadFile = %v", err)
				}
			}},
		{"failed read reports the error", OpRead,
			func(f *FS, h log.File) error { _, err := h.ReadAt(make([]byte, 1), 0); return err },
			func(t *testing.T, f *FS) {}},
		{"failed size reports the error", OpSize,
			func(f *FS, h log.File) error { _, err := h.Size(); return err },
			func(t *testing.T, f *FS) {}},
		{"failed readdir reports the error", OpReadDir,
			func(f *FS, h log.File) error { _, err := f.ReadDir("/d"); return err },
			func(t *testing.T, f *FS) {}},
		{"failed close leaves the handle usable", OpClose,
			func(f *FS, h log.File) error { return h.Close() },
			func(t *testing.T, f *FS) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			create(t, f, "/d/a", "data", true, true)
			h := open(t, f, "/d/a")
			var gotPath string
			f.SetHook(func(op Op, path string) error {
				if op == tt.op {
					gotPath = path
					return boom
				}
				return nil
			})
			before := f.Count(tt.op)
			if err := tt.run(f, h); !errors.Is(err, boom) {
				t.Fatalf("%v with a failing hook = %v, want boom", tt.op, err)
			}
			if gotPath == "" {
				t.Fatalf("hook got no path for %v", tt.op)
			}
			if got := f.Count(tt.op); got != before {
				t.Fatalf("Count(%v) went from %d to %d on a failed call", tt.op, before, got)
			}
			tt.check(t, f)
			f.SetHook(nil)
			if _, err := h.Size(); err != nil {
				t.Fatalf("handle unusable after the hook was cleared: %v", err)
			}
		})
	}
}

func TestShortWrite(t *testing.T) {
	tests := []struct {
		name  string
		sw    *ShortWrite
		wantN int
		want  error
		file  string
	}{
		{"short write applies N bytes and returns the error", &ShortWrite{N: 3, Err: ErrNoSpace}, 3, ErrNoSpace, "....ABC"},
		{"short write of zero bytes applies nothing, not even the gap", &ShortWrite{N: 0, Err: ErrNoSpace}, 0, ErrNoSpace, "...."},
		{"short write with N beyond the buffer is clamped", &ShortWrite{N: 99, Err: ErrNoSpace}, 6, ErrNoSpace, "....ABCDEF"},
		{"short write without an error returns io.ErrShortWrite", &ShortWrite{N: 2}, 2, io.ErrShortWrite, "....AB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			create(t, f, "/a", "....", true, true)
			h := open(t, f, "/a")
			f.SetHook(func(op Op, _ string) error {
				if op == OpWrite {
					return tt.sw
				}
				return nil
			})
			n, err := h.WriteAt([]byte("ABCDEF"), 4)
			if n != tt.wantN || !errors.Is(err, tt.want) {
				t.Fatalf("WriteAt = %d, %v; want %d, %v", n, err, tt.wantN, tt.want)
			}
			if b, _ := f.ReadFile("/a"); string(b) != tt.file {
				t.Fatalf("file = %q, want %q", b, tt.file)
			}
			if c := f.Count(OpWrite); c != 1 {
				t.Fatalf("Count(OpWrite) = %d, want 1 (only the setup write)", c)
			}
		})
	}
	t.Run("ShortWrite for a non-write op is an ordinary error", func(t *testing.T) {
		f := New()
		create(t, f, "/a", "data", true, true)
		h := open(t, f, "/a")
		sw := &ShortWrite{N: 1, Err: ErrNoSpace}
		f.SetHook(func(op Op, _ string) error {
			if op == OpSync {
				return sw
			}
			return nil
		})
		var got *ShortWrite
		if err := h.Sync(); !errors.As(err, &got) || got != sw || !errors.Is(err, ErrNoSpace) {
			t.Fatalf("Sync = %v, want the ShortWrite unwrapping to ENOSPC", err)
		}
	})
}

func TestFailNth(t *testing.T) {
	for n := 1; n <= 3; n++ {
		t.Run(fmt.Sprintf("FailNth fails only sync number %d", n), func(t *testing.T) {
			f := New()
			h := open(t, f, "/a")
			f.SetHook(FailNth(OpSync, n, ErrNoSpace))
			var failed []int
			for i := 1; i <= 4; i++ {
				_, err := h.WriteAt([]byte{byte('0' + i)}, int64(i-1))
				must(t, err) // writes are never the n-th sync
				if err := h.Sync(); err != nil {
					if !errors.Is(err, ErrNoSpace) {
						t.Fatalf("sync %d = %v", i, err)
					}
					failed = append(failed, i)
				}
			}
			if !slices.Equal(failed, []int{n}) {
				t.Fatalf("failed syncs = %v, want [%d]", failed, n)
			}
			if got := f.Count(OpSync); got != 3 {
				t.Fatalf("Count(OpSync) = %d, want 3", got)
			}
		})
	}
	t.Run("FailNth under concurrency fails exactly one call", func(t *testing.T) {
		f := New()
		f.SetHook(FailNth(OpSyncDir, 50, ErrNoSpace))
		var mu sync.Mutex
		fails := 0
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if err := f.SyncDir("/"); err != nil {
					mu.Lock()
					fails++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if fails != 1 || f.Count(OpSyncDir) != 99 {
			t.Fatalf("fails = %d, Count(OpSyncDir) = %d; want 1 and 99", fails, f.Count(OpSyncDir))
		}
	})
}

func TestHookCanCallBackIntoFS(t *testing.T) {
	t.Run("hook may read counters without deadlocking", func(t *testing.T) {
		f := New()
		h := open(t, f, "/a")
		var seen []int
		f.SetHook(func(op Op, _ string) error {
			if op == OpSync {
				seen = append(seen, f.Count(OpSync))
			}
			return nil
		})
		must(t, h.Sync())
		must(t, h.Sync())
		if !slices.Equal(seen, []int{0, 1}) {
			t.Fatalf("counts seen by hook = %v, want [0 1]", seen)
		}
	})
	t.Run("hook calling PowerCut loses power exactly before the op", func(t *testing.T) {
		f := New()
		create(t, f, "/a", "v1", true, true)
		h := open(t, f, "/a")
		_, err := h.WriteAt([]byte("v2"), 0)
		must(t, err)
		cut := errors.New("power cut")
		f.SetHook(func(op Op, _ string) error {
			if op == OpSync {
				f.PowerCut()
				return cut
			}
			return nil
		})
		if err := h.Sync(); !errors.Is(err, cut) {
			t.Fatalf("Sync = %v", err)
		}
		f.SetHook(nil)
		if b, _ := f.ReadFile("/a"); string(b) != "v1" {
			t.Fatalf("file = %q, want v1", b)
		}
	})
}

func TestCountCountsSuccessfulCalls(t *testing.T) {
	f := New()
	h := open(t, f, "/a")
	for range 3 {
		_, err := h.WriteAt([]byte("x"), 0)
		must(t, err)
	}
	must(t, h.Sync())
	must(t, f.SyncDir("/"))
	must(t, f.SyncDir("/"))
	if err := f.SyncDir("/missing"); err == nil {
		t.Fatal("SyncDir of a missing dir succeeded")
	}
	for op, want := range map[Op]int{OpOpen: 1, OpWrite: 3, OpSync: 1, OpSyncDir: 2, OpRename: 0} {
		if got := f.Count(op); got != want {
			t.Errorf("Count(%v) = %d, want %d", op, got, want)
		}
	}
}

func TestOpString(t *testing.T) {
	seen := map[string]bool{}
	for op := OpOpen; op <= OpClose; op++ {
		s := op.String()
		if s == "" || seen[s] || s[0] == 'O' {
			t.Errorf("Op %d has name %q: want a unique lowercase name", int(op), s)
		}
		seen[s] = true
	}
	if got := Op(99).String(); got != "Op(99)" {
		t.Errorf("Op(99).String() = %q", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := New()
	must(t, f.MkdirAll("/q", 0o755))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("/q/seg%d", w)
			h, err := f.OpenFile(name, rw, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Close()
			buf := make([]byte, 8)
			for i := range 200 {
				if _, err := h.WriteAt([]byte(fmt.Sprintf("%08d", i)), int64(i*8)); err != nil {
					t.Error(err)
					return
				}
				if _, err := h.ReadAt(buf, int64(i*8)); err != nil {
					t.Error(err)
					return
				}
				if i%20 == 0 {
					if err := h.Sync(); err != nil {
						t.Error(err)
						return
					}
					if err := f.SyncDir("/q"); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
		wg.Go(func() {
			for range 200 {
				if _, err := f.ReadDir("/q"); err != nil {
					t.Error(err)
					return
				}
				f.Count(OpWrite)
			}
		})
	}
	wg.Wait()
	if got := f.Count(OpWrite); got != 8*200 {
		t.Fatalf("Count(OpWrite) = %d, want %d", got, 8*200)
	}
	names, _ := f.ReadDir("/q")
	if len(names) != 8 {
		t.Fatalf("ReadDir = %v, want 8 segments", names)
	}
}

func TestConcurrentPowerCut(t *testing.T) {
	// Writers racing a power cut must see either success or ErrPowerCut,
	// never a panic or a data race.
	f := New()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			h, err := f.OpenFile(fmt.Sprintf("/f%d", w), rw, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 500 {
				_, err := h.WriteAt([]byte("x"), int64(i))
				if err == nil {
					err = h.Sync()
				}
				if err != nil {
					if !errors.Is(err, ErrPowerCut) {
						t.Errorf("unexpected error %v", err)
					}
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			f.PowerCut()
		}
	})
	wg.Wait()
}
