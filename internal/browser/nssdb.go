package browser

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// certutil returns NSS's certutil, or "" when it is not installed
// (libnss3-tools); a variable so that tests can take it away.
var certutil = func() string {
	p, _ := exec.LookPath("certutil")
	return p
}

// createDB makes a new NSS database in dir with certutil, before the
// module is in it (certutil loads every module of the database). Without
// certutil only pkcs11.txt is written, with NSS's internal module first:
// the browser creates cert9.db and key4.db when it opens the database
// read-write, but read-only tools (certutil -L, modutil -list) refuse such
// a directory until then.
func createDB(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the NSS database directory: %w", err)
	}
	tool := certutil()
	if tool == "" {
		return nil
	}
	out, err := exec.Command(tool, "-N", "-d", "sql:"+dir, "--empty-password").CombinedOutput()
	if err != nil {
		return fmt.Errorf("creating the NSS database with certutil: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// pkcs11txt is the module list of an NSS "sql:" database: entries
// separated by blank lines, each a few "key=value" lines (library, name,
// parameters, NSS). NSS itself writes it this way (pk11pars / sftkdb), and
// it loads every entry when a browser opens the database.
const pkcs11txt = "pkcs11.txt"

// friendlySlots is how many slot IDs get slotFlags=PublicCerts. NSS keys
// the flag by slot ID, and the module numbers slots from 1 as readers
// appear; modutil would flag only the slots that exist when it runs (none
// without a reader).
const friendlySlots = 16

// internalEntry is the NSS internal module that NSS writes first in a new
// database (as `certutil -N` writes it). A database directory that holds
// only this file is completed by NSS (cert9.db, key4.db) when the browser
// opens it.
func internalEntry(dir string) string {
	return "library=\n" +
		"name=NSS Internal PKCS #11 Module\n" +
		"parameters=configdir='sql:" + dir + "' certPrefix='' keyPrefix='' secmod='secmod.db' flags= updatedir='' " +
		"updateCertPrefix='' updateKeyPrefix='' updateid='' updateTokenDescription='' \n" +
		"NSS=Flags=internal,critical trustOrder=75 cipherOrder=100 slotParams=(1={slotFlags=[ECC,RSA,DSA,DH,RC2,RC4," +
		"DES,RANDOM,SHA1,MD5,MD2,SSL,TLS,AES,Camellia,SEED,SHA256,SHA512] askpw=any timeout=30})"
}

// moduleEntry is the module's entry: FRIENDLY (slotFlags=PublicCerts) on
// every slot, so that NSS lists the certificate without logging in.
func moduleEntry(module string) string {
	var b strings.Builder
	b.WriteString("library=" + module + "\nname=" + ModuleName + "\nNSS=slotParams={")
	for i := 1; i <= friendlySlots; i++ {
		if i > 1 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "0x%08x=[slotFlags=PublicCerts]", i)
	}
	b.WriteString("}")
	return b.String()
}

// entry is one block of pkcs11.txt.
type entry struct {
	text string
	keys map[string]string
}

func parseEntries(b []byte) []entry {
	var out []entry
	for _, block := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		block = strings.Trim(block, "\n")
		if strings.TrimSpace(block) == "" {
			continue
		}
		e := entry{text: block, keys: map[string]string{}}
		for _, line := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				e.keys[strings.TrimSpace(k)] = strings.TrimRight(v, " ")
			}
		}
		out = append(out, e)
	}
	return out
}

// ours reports whether an entry is this module's: by name, or by a
// library file named like it (an entry added by hand or by modutil).
func (e entry) ours() bool {
	return e.keys["name"] == ModuleName || filepath.Base(e.keys["library"]) == LibraryName
}

// friendly reports whether the entry flags slot 1 PublicCerts.
func (e entry) friendly() bool {
	p := e.keys["NSS"]
	i := strings.Index(strings.ToLower(p), "0x00000001=[")
	if i < 0 {
		return false
	}
	slot, _, _ := strings.Cut(p[i:], "]")
	return strings.Contains(slot, "PublicCerts")
}

func joinEntries(es []entry) []byte {
	var parts []string
	for _, e := range es {
		parts = append(parts, e.text)
	}
	return []byte(strings.Join(parts, "\n\n") + "\n")
}

// nssState reads the registration in the database directory dir.
func nssState(dir, module string) (State, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, pkcs11txt))
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); derr != nil {
			return Absent, "", nil
		}
		return NotRegistered, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading the NSS module list: %w", err)
	}
	for _, e := range parseEntries(b) {
		if !e.ours() {
			continue
		}
		lib := e.keys["library"]
		if module != "" && lib != module || !e.friendly() {
			return Stale, lib, nil
		}
		return Registered, lib, nil
	}
	return NotRegistered, "", nil
}

// nssRegister puts the module's entry in dir's pkcs11.txt, replacing an
// older entry of the module, creating the directory (0700) and the file
// (with NSS's internal module first) when missing. It reports whether it
// wrote anything.
func nssRegister(dir, module string) (bool, error) {
	path := filepath.Join(dir, pkcs11txt)
	if !exists(path) && !exists(filepath.Join(dir, "cert9.db")) {
		if err := createDB(dir); err != nil {
			return false, err
		}
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading the NSS module list: %w", err)
	}
	entries := parseEntries(old)
	if len(entries) == 0 {
		entries = []entry{{text: internalEntry(dir)}}
	}
	kept := entries[:0]
	for _, e := range entries {
		if !e.ours() {
			kept = append(kept, e)
		}
	}
	kept = append(kept, entry{text: moduleEntry(module)})
	out := joinEntries(kept)
	if bytes.Equal(out, old) {
		return false, nil
	}
	return true, writeFile(path, out, 0o600)
}

// nssUnregister removes the module's entries from dir's pkcs11.txt.
func nssUnregister(dir string) (bool, error) {
	path := filepath.Join(dir, pkcs11txt)
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the NSS module list: %w", err)
	}
	entries := parseEntries(old)
	kept := entries[:0]
	for _, e := range entries {
		if !e.ours() {
			kept = append(kept, e)
		}
	}
	if len(kept) == len(entries) {
		return false, nil
	}
	return true, writeFile(path, joinEntries(kept), 0o600)
}

// writeFile replaces path atomically (a temporary file renamed over it),
// keeping the mode of an existing file.
func writeFile(path string, b []byte, mode fs.FileMode) error {
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cie-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
