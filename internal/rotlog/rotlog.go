// Package rotlog owns the diagnostic log files of CIE Desktop: an
// append-only file that stays bounded in size by rotating itself, safe
// for use by several goroutines and by several processes at once.
//
// The PKCS#11 module runs inside every browser process that loads it,
// and all of them append to the same file (CIE_PKCS11_LOG). So each
// record is one write(2) on a descriptor opened with O_APPEND, made while
// holding an advisory lock on the file (flock on Unix, LockFileEx on
// Windows). Before writing, the writer checks under the lock that the
// path still names the file it holds open: when another process has
// rotated it, the writer reopens the path. When the record would take
// the file past MaxSize, the writer rotates: path.Keep-1 → path.Keep, …,
// path → path.1, by renames, and writes to a fresh path. A file exceeds
// MaxSize only when it holds a single record larger than MaxSize.
//
// Rotated files: path.1 is the newest, path.Keep the oldest; older ones
// are removed. Every file is created with mode 0600 (group and other bits
// of an existing file are cleared when it is opened).
package rotlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Defaults: 1 MiB per file and 3 rotated files, so at most 4 MiB of logs.
const (
	DefaultMaxSize = 1 << 20
	DefaultKeep    = 3
)

// Bounds of the values read by FromEnv.
const (
	maxMaxKB = 1 << 20 // 1 GiB
	maxKeep  = 100
)

// Options bound the log.
type Options struct {
	// MaxSize is the size in bytes a file may reach; a record that would
	// take it further goes to a fresh file. 0 means DefaultMaxSize.
	MaxSize int64
	// Keep is how many rotated files are kept (path.1 … path.Keep). 0
	// means DefaultKeep; a negative value keeps none.
	Keep int
}

// Effective returns the size bound in bytes and the number of rotated
// files kept that o stands for, defaults applied.
func (o Options) Effective() (maxSize int64, keep int) {
	d := o.withDefaults()
	return d.MaxSize, d.Keep
}

func (o Options) withDefaults() Options {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	} else if o.Keep < 0 {
		o.Keep = 0
	}
	return o
}

// FromEnv reads the options of the log configured by the environment
// variable prefix: prefix_MAX_KB (the size bound in KiB, 1 to 1048576) and
// prefix_KEEP (rotated files kept, 0 to 100). For CIE_PKCS11_LOG they are
// CIE_PKCS11_LOG_MAX_KB and CIE_PKCS11_LOG_KEEP. Unset variables give the
// defaults; an invalid value gives the default too, and an error that
// names it.
func FromEnv(prefix string, getenv func(string) string) (Options, error) {
	var o Options
	var errs []error
	if v := strings.TrimSpace(getenv(prefix + "_MAX_KB")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > maxMaxKB {
			errs = append(errs, fmt.Errorf("rotlog: %s_MAX_KB=%q is not a size in KiB from 1 to %d; using %d", prefix, v, maxMaxKB, DefaultMaxSize>>10))
		} else {
			o.MaxSize = n << 10
		}
	}
	if v := strings.TrimSpace(getenv(prefix + "_KEEP")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0 || n > maxKeep:
			errs = append(errs, fmt.Errorf("rotlog: %s_KEEP=%q is not a number of files from 0 to %d; using %d", prefix, v, maxKeep, DefaultKeep))
		case n == 0:
			o.Keep = -1
		default:
			o.Keep = n
		}
	}
	return o, errors.Join(errs...)
}

// Writer appends records to a bounded, rotated log file. Each Write is one
// record. Its methods are safe for concurrent use.
type Writer struct {
	path string
	opts Options

	mu     sync.Mutex
	f      *os.File
	closed bool
}

// Open opens (creating it with mode 0600) the log file at path.
func Open(path string, opts Options) (*Writer, error) {
	w := &Writer{path: path, opts: opts.withDefaults()}
	f, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("rotlog: opening the log: %w", err)
	}
	w.f = f
	return w, nil
}

// openFile opens path for appending, creating it 0600, and clears group
// and other permission bits of an existing file.
func openFile(path string) (*os.File, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		_ = f.Chmod(st.Mode().Perm() &^ 0o077)
	}
	return f, nil
}

// Path returns the path of the current file.
func (w *Writer) Path() string { return w.path }

// maxAttempts bounds the reopen loop of Write: each turn follows a
// rotation, which needs a file full of records, so a few turns suffice.
const maxAttempts = 16

// Write appends p as one record, rotating first when p would take the
// file past MaxSize (unless the file is empty).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("rotlog: writing the log: %w", fs.ErrClosed)
	}
	for range maxAttempts {
		if w.f == nil {
			f, err := openFile(w.path)
			if err != nil {
				return 0, fmt.Errorf("rotlog: opening the log: %w", err)
			}
			w.f = f
		}
		n, done, err := w.tryWrite(p)
		if done {
			return n, err
		}
		w.f.Close()
		w.f = nil
	}
	return 0, errors.New("rotlog: writing the log: the file kept being rotated by other processes")
}

// tryWrite writes p to w.f under the file lock when w.f is still the file
// at w.path and p fits. It reports done=false when w.f must be reopened:
// another process rotated it, or this call did.
func (w *Writer) tryWrite(p []byte) (n int, done bool, err error) {
	if err := lockFile(w.f); err != nil {
		return 0, true, fmt.Errorf("rotlog: locking the log: %w", err)
	}
	defer unlockFile(w.f)
	cur, err := w.f.Stat()
	if err != nil {
		return 0, true, fmt.Errorf("rotlog: checking the log: %w", err)
	}
	if at, err := os.Stat(w.path); err != nil || !os.SameFile(cur, at) {
		return 0, false, nil // rotated or removed meanwhile: reopen the path
	}
	if size := cur.Size(); size > 0 && size+int64(len(p)) > w.opts.MaxSize {
		if err := w.rotate(); err != nil {
			// The renames failed (on Windows, another process may hold
			// an old file open): start the file afresh rather than
			// grow past the bound.
			if terr := w.f.Truncate(0); terr != nil {
				return 0, true, fmt.Errorf("rotlog: rotating the log: %w", errors.Join(err, terr))
			}
		} else {
			return 0, false, nil
		}
	}
	n, err = w.f.Write(p)
	if err != nil {
		err = fmt.Errorf("rotlog: writing the log: %w", err)
	}
	return n, true, err
}

// rotate shifts the rotated files up by one, dropping the oldest, and
// renames the current file to path.1. The caller holds the lock on the
// current file, which every writer takes before writing or rotating, so
// no two rotations of the same file overlap.
func (w *Writer) rotate() error {
	keep := w.opts.Keep
	if keep == 0 {
		for i := maxKeep; i >= 0; i-- {
			if err := os.Remove(Name(w.path, i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	}
	// The oldest kept file goes, and so do older ones left by writers
	// that kept more (Keep lowered since).
	for i := maxKeep; i >= keep; i-- {
		if err := os.Remove(Name(w.path, i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for i := keep - 1; i >= 1; i-- {
		if err := os.Rename(Name(w.path, i), Name(w.path, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Rename(w.path, Name(w.path, 1))
}

// Close closes the file. Later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Name returns the name of the i-th rotated file of path (path itself for
// i = 0).
func Name(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// Files returns the log files of path that exist, oldest first: the
// rotated ones path.N … path.1, then path. It looks up to maxKeep rotated
// files, whatever Keep the writers used.
func Files(path string) []string {
	var out []string
	for i := maxKeep; i >= 0; i-- {
		if st, err := os.Stat(Name(path, i)); err == nil && st.Mode().IsRegular() {
			out = append(out, Name(path, i))
		}
	}
	return out
}
