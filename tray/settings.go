package tray

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/ciedesktop/cie-desktop/internal/rotlog"
)

// Log levels of the settings.
const (
	LogOff   = "off"
	LogError = "error"
	LogInfo  = "info"
	LogDebug = "debug"
)

// LogLevels lists the settings' log levels, quietest first.
var LogLevels = []string{LogOff, LogError, LogInfo, LogDebug}

// Settings are the user's choices, kept in a small JSON file.
type Settings struct {
	// Language is "it", "en", or "" for the system's language.
	Language string `json:"language"`
	// LogLevel is one of LogLevels; "" means LogOff. Logs never hold PINs.
	LogLevel string `json:"log_level"`
}

// DefaultSettingsPath returns os.UserConfigDir()/cie-desktop/tray.json.
func DefaultSettingsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the configuration directory: %w", err)
	}
	return filepath.Join(dir, "cie-desktop", "tray.json"), nil
}

// DefaultLogPath returns os.UserCacheDir()/cie-desktop/logs/cie-tray.log.
func DefaultLogPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(dir, "cie-desktop", "logs", "cie-tray.log"), nil
}

// LoadSettings reads the settings at path. A missing file gives the
// defaults and no error; unknown values are replaced by the defaults.
func LoadSettings(path string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading settings: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, fmt.Errorf("reading settings %s: %w", path, err)
	}
	return s.normalised(), nil
}

func (s Settings) normalised() Settings {
	if !isLanguage(s.Language) {
		s.Language = ""
	}
	valid := false
	for _, l := range LogLevels {
		valid = valid || s.LogLevel == l
	}
	if !valid {
		s.LogLevel = LogOff
	}
	return s
}

// Save writes the settings to path atomically, creating its directory.
func (s Settings) Save(path string) error {
	b, err := json.MarshalIndent(s.normalised(), "", "  ")
	if err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tray-*.json")
	if err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving settings: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving settings: %w", err)
	}
	return nil
}

// maxLogSize is the size at which the log file is rotated (one old copy,
// ".1", is kept), so the log stays bounded.
const maxLogSize = 1 << 20

// LogFile is a size-bounded log file whose level can change while the
// program runs. Nothing is created on disk while the level is LogOff.
type LogFile struct {
	path  string
	level slog.LevelVar
	mu    sync.Mutex
	name  string // current level name
	w     *rotlog.Writer
}

// NewLogFile returns the log at path with the given level name.
func NewLogFile(path, level string) *LogFile {
	l := &LogFile{path: path}
	l.SetLevel(level)
	return l
}

// Path returns the log file's path.
func (l *LogFile) Path() string { return l.path }

// levelOff is above every level slog uses, so that nothing is logged.
const levelOff = slog.Level(100)

// SetLevel changes the level (one of LogLevels; anything else is LogOff).
func (l *LogFile) SetLevel(name string) {
	lv := levelOff
	switch name {
	case LogError:
		lv = slog.LevelError
	case LogInfo:
		lv = slog.LevelInfo
	case LogDebug:
		lv = slog.LevelDebug
	default:
		name = LogOff
	}
	l.mu.Lock()
	l.name = name
	l.mu.Unlock()
	l.level.Set(lv)
}

// Level returns the current level name.
func (l *LogFile) Level() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.name
}

// Logger returns a logger writing text records to the file.
func (l *LogFile) Logger() *slog.Logger {
	return slog.New(&levelHandler{level: &l.level, h: slog.NewTextHandler(l, &slog.HandlerOptions{Level: &l.level})})
}

// levelHandler answers Enabled from the level, so that the file is never
// opened while logging is off.
type levelHandler struct {
	level *slog.LevelVar
	h     slog.Handler
}

// Enabled compares with the current level.
func (h *levelHandler) Enabled(_ context.Context, lv slog.Level) bool {
	return lv >= h.level.Level()
}

// Handle writes the record.
func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error { return h.h.Handle(ctx, r) }

// WithAttrs keeps the level check.
func (h *levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelHandler{level: h.level, h: h.h.WithAttrs(a)}
}

// WithGroup keeps the level check.
func (h *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{level: h.level, h: h.h.WithGroup(name)}
}

// Write appends p to the file, opening it on first use. The file is
// rotated by rotlog when it would grow past maxLogSize (one old copy is
// kept), created 0600 in a 0700 directory.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
			return 0, fmt.Errorf("opening the log: %w", err)
		}
		w, err := rotlog.Open(l.path, rotlog.Options{MaxSize: maxLogSize, Keep: 1})
		if err != nil {
			return 0, fmt.Errorf("opening the log: %w", err)
		}
		l.w = w
	}
	return l.w.Write(p)
}

// Tail returns up to n bytes from the end of the log (the rotated copy
// first when the current file is shorter), for the support bundle.
func (l *LogFile) Tail(n int64) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := readTail(l.path, n)
	if int64(len(cur)) >= n {
		return cur
	}
	old := readTail(l.path+".1", n-int64(len(cur)))
	return append(old, cur...)
}

func readTail(path string, n int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	off := max(st.Size()-n, 0)
	b, _ := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	return b
}

// Close closes the file; a later Write opens it again.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return nil
	}
	err := l.w.Close()
	l.w = nil
	return err
}
