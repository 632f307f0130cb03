// Package browser registers the CIE PKCS#11 module (libcie-pkcs11.so) in
// the browsers of a Linux user, for `cie browser register|unregister|
// status` and the installers. Idempotent: registering twice changes
// nothing the second time; an entry with another library path is
// replaced.
//
// Where the module goes:
//
//   - Chromium (and Chrome, Brave, …) read the user's NSS database: the
//     legacy ~/.pki/nssdb when it exists, else ~/.local/share/pki/nssdb
//     (Chromium 146+ on fresh installs). The module is added to each that
//     exists; when neither exists both are created. The legacy one is never
//     created next to an existing new one: its mere existence would switch
//     Chromium to it and hide the certificates kept in the new one.
//   - Firefox: the NSS database of every profile listed in profiles.ini
//     (~/.mozilla/firefox, and the snap, flatpak and LibreWolf homes).
//   - With Config.PolicyFiles (root, `--system`): Firefox's system-wide
//     policies.json, SecurityDevices "Add". Firefox adds a policy module to
//     every profile at start-up, but without FRIENDLY.
//
// In an NSS database the module entry is written directly into
// pkcs11.txt, with slotFlags=PublicCerts ("FRIENDLY") for slot IDs 1 to 16:
// NSS then lists the certificate without logging in, which browsers need
// (with a token that requires a login they hang at an invisible PIN prompt
// or show their own). modutil would flag only the slots present when it
// runs, none without a reader, and it loads the module to find them.
// Browsers read the file when they start: restart them after a change.
package browser

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// ModuleName is the name the module is registered under.
const ModuleName = "CIE Desktop"

// LibraryName is the module's file name.
const LibraryName = "libcie-pkcs11.so"

// Kind is a kind of place a browser reads modules from.
type Kind int

// Kinds.
const (
	ChromiumDB     Kind = iota // an NSS database of Chromium
	FirefoxProfile             // the NSS database of a Firefox profile
	FirefoxPolicy              // a system-wide Firefox policies.json
)

// String names the kind for people.
func (k Kind) String() string {
	switch k {
	case ChromiumDB:
		return "Chromium"
	case FirefoxProfile:
		return "Firefox profile"
	case FirefoxPolicy:
		return "Firefox policy"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// State is what a target holds.
type State int

// States.
const (
	Absent        State = iota // the database or file does not exist
	NotRegistered              // it exists without the module
	Registered                 // it has the module, at the expected path, FRIENDLY
	Stale                      // it has the module at another path, or not FRIENDLY
)

// String describes the state.
func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case NotRegistered:
		return "not registered"
	case Registered:
		return "registered"
	case Stale:
		return "registered differently"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Target is one place the module is registered in.
type Target struct {
	Kind Kind
	// Name tells targets of a kind apart: the profile's name, the
	// database's path relative to the home directory.
	Name string
	// Path is the NSS database directory, or the policies.json file.
	Path string
	// create: Register creates the target when it is missing.
	create bool
	// home is the user's home directory (Config.Home).
	home string
}

// Config says whose browsers and which module.
type Config struct {
	// Home is the user's home directory.
	Home string
	// Module is the absolute path of libcie-pkcs11.so; required by
	// Register, and Status compares registrations with it when set.
	Module string
	// PolicyFiles are the system-wide Firefox policy files to edit as
	// well (DefaultPolicyFiles for `--system`); nil: none.
	PolicyFiles []string
}

// Report is the outcome for one target.
type Report struct {
	Target
	State   State  // after the operation
	Library string // the registered library path, if any
	Changed bool   // the operation wrote the target
	// InUse: the browser that reads the target is running — Firefox with
	// this profile open (its lock exists), or, for Chromium's databases,
	// a Chromium-family browser (its SingletonLock names a live process).
	// The browser reads the change at its next start.
	InUse bool
	// Err is the failure for this target; the others are still done.
	Err error
}

// Chromium's NSS databases, relative to the home directory.
const (
	legacyNSSDB = ".pki/nssdb"
	newNSSDB    = ".local/share/pki/nssdb"
)

// firefoxHomes are where Firefox keeps profiles.ini, relative to the home
// directory: Debian/Fedora packages and Mozilla's tarball, snap, flatpak,
// LibreWolf.
var firefoxHomes = []string{
	".mozilla/firefox",
	"snap/firefox/common/.mozilla/firefox",
	".var/app/org.mozilla.firefox/.mozilla/firefox",
	".librewolf",
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Targets lists the places the module goes, for the configuration.
func Targets(cfg Config) ([]Target, error) {
	if cfg.Home == "" || !filepath.IsAbs(cfg.Home) {
		return nil, fmt.Errorf("browser: the home directory %q is not an absolute path", cfg.Home)
	}
	var ts []Target
	legacy, fresh := filepath.Join(cfg.Home, legacyNSSDB), filepath.Join(cfg.Home, newNSSDB)
	switch le, ne := exists(legacy), exists(fresh); {
	case le && ne:
		ts = append(ts, Target{Kind: ChromiumDB, Name: "~/" + legacyNSSDB, Path: legacy}, Target{Kind: ChromiumDB, Name: "~/" + newNSSDB, Path: fresh})
	case le:
		ts = append(ts, Target{Kind: ChromiumDB, Name: "~/" + legacyNSSDB, Path: legacy})
	case ne:
		ts = append(ts, Target{Kind: ChromiumDB, Name: "~/" + newNSSDB, Path: fresh})
	default:
		ts = append(ts, Target{Kind: ChromiumDB, Name: "~/" + legacyNSSDB, Path: legacy, create: true},
			Target{Kind: ChromiumDB, Name: "~/" + newNSSDB, Path: fresh, create: true})
	}
	for _, h := range firefoxHomes {
		profiles, err := firefoxProfiles(filepath.Join(cfg.Home, h))
		if err != nil {
			return nil, err
		}
		ts = append(ts, profiles...)
	}
	for _, p := range cfg.PolicyFiles {
		ts = append(ts, Target{Kind: FirefoxPolicy, Name: p, Path: p, create: true})
	}
	for i := range ts {
		ts[i].home = cfg.Home
	}
	return ts, nil
}

// firefoxProfiles reads the profiles of a Firefox home from profiles.ini;
// only profiles whose directory exists count.
func firefoxProfiles(home string) ([]Target, error) {
	f, err := os.Open(filepath.Join(home, "profiles.ini"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("browser: reading the Firefox profiles: %w", err)
	}
	defer f.Close()
	type profile struct {
		name, path string
		relative   bool
	}
	var ps []*profile
	var cur *profile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			cur = nil
			if strings.HasPrefix(line, "[Profile") {
				cur = &profile{relative: true}
				ps = append(ps, cur)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if cur == nil || !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Name":
			cur.name = strings.TrimSpace(v)
		case "Path":
			cur.path = strings.TrimSpace(v)
		case "IsRelative":
			cur.relative = strings.TrimSpace(v) != "0"
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("browser: reading the Firefox profiles: %w", err)
	}
	var ts []Target
	for _, p := range ps {
		if p.path == "" {
			continue
		}
		dir := p.path
		if p.relative {
			dir = filepath.Join(home, filepath.FromSlash(p.path))
		}
		if !exists(dir) {
			continue
		}
		name := p.name
		if name == "" {
			name = filepath.Base(dir)
		}
		ts = append(ts, Target{Kind: FirefoxProfile, Name: name, Path: dir, create: true})
	}
	return ts, nil
}

func (t Target) state(module string) (State, string, error) {
	if t.Kind == FirefoxPolicy {
		return policyState(t.Path, module)
	}
	return nssState(t.Path, module)
}

// chromiumHomes are the user-data directories of the Chromium-family
// browsers that read Chromium's NSS databases, relative to the home
// directory.
var chromiumHomes = []string{
	".config/chromium",
	".config/google-chrome",
	".config/google-chrome-beta",
	".config/google-chrome-unstable",
	".config/BraveSoftware/Brave-Browser",
	".config/microsoft-edge",
	".config/vivaldi",
	".config/opera",
}

// inUse reports an open Firefox profile (Firefox holds a "lock" symlink,
// and .parentlock, in it while it runs) or, for a Chromium database, a
// running Chromium-family browser.
func (t Target) inUse() bool {
	switch t.Kind {
	case FirefoxProfile:
		_, err := os.Lstat(filepath.Join(t.Path, "lock"))
		return err == nil
	case ChromiumDB:
		return t.home != "" && chromiumRunning(t.home)
	}
	return false
}

// chromiumRunning reports whether a Chromium-family browser runs for the
// user of home: while it runs, its user-data directory holds the symlink
// SingletonLock → "HOSTNAME-PID". A lock of this host whose process is
// gone is left over from a crash; a lock of another host (a shared home)
// counts as running.
func chromiumRunning(home string) bool {
	host, _ := os.Hostname()
	for _, d := range chromiumHomes {
		target, err := os.Readlink(filepath.Join(home, d, "SingletonLock"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(target, '-')
		pid, perr := strconv.Atoi(target[i+1:])
		if i < 0 || perr != nil || pid <= 0 || target[:i] != host {
			return true
		}
		if processAlive(pid) {
			return true
		}
	}
	return false
}

// processAlive reports whether process pid of this host exists: /proc
// tells on Linux; elsewhere a process is assumed alive.
func processAlive(pid int) bool {
	if runtime.GOOS != "linux" {
		return true
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

func (t Target) report(module string, changed bool, err error) Report {
	r := Report{Target: t, Changed: changed, Err: err, InUse: t.inUse()}
	st, lib, serr := t.state(module)
	if r.Err == nil {
		r.Err = serr
	}
	r.State, r.Library = st, lib
	return r
}

// Register adds the module to every target (see the package
// documentation). A target that fails is reported with its error; the
// error returned joins them.
func Register(cfg Config) ([]Report, error) {
	if err := CheckModule(cfg.Module); err != nil {
		return nil, err
	}
	ts, err := Targets(cfg)
	if err != nil {
		return nil, err
	}
	var out []Report
	var errs []error
	for _, t := range ts {
		var changed bool
		var err error
		switch {
		case t.Kind == FirefoxPolicy:
			changed, err = policyRegister(t.Path, cfg.Module)
		case !t.create && !exists(t.Path):
			continue
		default:
			changed, err = nssRegister(t.Path, cfg.Module)
		}
		if err != nil {
			err = fmt.Errorf("browser: registering in %s %s: %w", t.Kind, t.Name, err)
			errs = append(errs, err)
		}
		out = append(out, t.report(cfg.Module, changed, err))
	}
	return out, errors.Join(errs...)
}

// Unregister removes the module from every target that has it.
func Unregister(cfg Config) ([]Report, error) {
	ts, err := Targets(cfg)
	if err != nil {
		return nil, err
	}
	var out []Report
	var errs []error
	for _, t := range ts {
		var changed bool
		var err error
		if t.Kind == FirefoxPolicy {
			changed, err = policyUnregister(t.Path)
		} else {
			changed, err = nssUnregister(t.Path)
		}
		if err != nil {
			err = fmt.Errorf("browser: unregistering from %s %s: %w", t.Kind, t.Name, err)
			errs = append(errs, err)
		}
		out = append(out, t.report("", changed, err))
	}
	return out, errors.Join(errs...)
}

// Status reports every target's registration without changing anything.
func Status(cfg Config) ([]Report, error) {
	ts, err := Targets(cfg)
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, t := range ts {
		out = append(out, t.report(cfg.Module, false, nil))
	}
	return out, nil
}

// CheckModule checks that path is an absolute path to an ELF shared
// object: browsers resolve a relative library path against their own
// working directory.
func CheckModule(path string) error {
	if path == "" || !filepath.IsAbs(path) {
		return fmt.Errorf("browser: the module path %q is not absolute", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("browser: opening the module: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.Read(magic); err != nil || string(magic) != "\x7fELF" {
		return fmt.Errorf("browser: %s is not a shared library", path)
	}
	return nil
}

// multiarch is Debian's library directory name for this architecture.
func multiarch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64-linux-gnu"
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	}
	return runtime.GOARCH + "-linux-gnu"
}

// FindModule returns the installed module: next to the executable exe
// (the same directory, ../lib, ../lib/cie-desktop, ../lib/<multiarch>/
// pkcs11), then the system's PKCS#11 directories.
func FindModule(exe string) (string, error) {
	var candidates []string
	if exe != "" {
		dir := filepath.Dir(exe)
		candidates = append(candidates,
			filepath.Join(dir, LibraryName),
			filepath.Join(dir, "..", "lib", LibraryName),
			filepath.Join(dir, "..", "lib", "cie-desktop", LibraryName),
			filepath.Join(dir, "..", "lib", multiarch(), "pkcs11", LibraryName))
	}
	candidates = append(candidates,
		filepath.Join("/usr/lib", multiarch(), "pkcs11", LibraryName),
		filepath.Join("/usr/lib/pkcs11", LibraryName),
		filepath.Join("/usr/lib/cie-desktop", LibraryName),
		filepath.Join("/usr/local/lib", LibraryName),
		filepath.Join("/usr/local/lib/pkcs11", LibraryName),
		filepath.Join("/opt/cie-desktop/lib", LibraryName))
	for _, c := range slices.Compact(candidates) {
		if abs, err := filepath.Abs(c); err == nil && exists(abs) {
			return abs, nil
		}
	}
	return "", fmt.Errorf("browser: %s not found next to %s nor in the system's PKCS#11 directories; give its path with --module", LibraryName, exe)
}
