package browser

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeModule writes a file that passes CheckModule.
func fakeModule(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, LibraryName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func byName(rs []Report) map[string]Report {
	m := map[string]Report{}
	for _, r := range rs {
		m[r.Kind.String()+" "+r.Name] = r
	}
	return m
}

// certutilDB is what `certutil -N` writes in a new database (NSS 3.87),
// plus a module the user added.
const certutilDB = `library=
name=NSS Internal PKCS #11 Module
parameters=configdir='sql:/home/u/.pki/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db' flags= updatedir='' updateCertPrefix='' updateKeyPrefix='' updateid='' updateTokenDescription='' 
NSS=Flags=internal,critical trustOrder=75 cipherOrder=100 slotParams=(1={slotFlags=[ECC,RSA,DSA,DH,RC2,RC4,DES,RANDOM,SHA1,MD5,MD2,SSL,TLS,AES,Camellia,SEED,SHA256,SHA512] askpw=any timeout=30})

library=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
name=Other token
`

func TestRegisterFreshHome(t *testing.T) {
	t.Run("with certutil", func(t *testing.T) { testRegisterFreshHome(t, true) })
	t.Run("without certutil", func(t *testing.T) {
		saved := certutil
		certutil = func() string { return "" }
		defer func() { certutil = saved }()
		testRegisterFreshHome(t, false)
	})
}

func testRegisterFreshHome(t *testing.T, withCertutil bool) {
	home := t.TempDir()
	mod := fakeModule(t, filepath.Join(home, "opt"))
	cfg := Config{Home: home, Module: mod}
	rs, err := Register(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := byName(rs)
	for _, db := range []string{legacyNSSDB, newNSSDB} {
		r, ok := got["Chromium ~/"+db]
		if !ok || r.State != Registered || !r.Changed || r.Library != mod {
			t.Fatalf("%s: %+v", db, r)
		}
		dir := filepath.Join(home, db)
		txt := read(t, filepath.Join(dir, pkcs11txt))
		if !strings.HasPrefix(txt, "library=\nname=NSS Internal PKCS #11 Module\nparameters=configdir='sql:"+dir+"'") {
			t.Errorf("%s lacks the internal module first:\n%s", db, txt)
		}
		if !strings.Contains(txt, "\n\nlibrary="+mod+"\nname=CIE Desktop\nNSS=slotParams={0x00000001=[slotFlags=PublicCerts] 0x00000002=[slotFlags=PublicCerts]") ||
			!strings.Contains(txt, "0x00000010=[slotFlags=PublicCerts]}\n") {
			t.Errorf("%s: module entry missing or not FRIENDLY:\n%s", db, txt)
		}
		if exists(filepath.Join(dir, "cert9.db")) != withCertutil {
			t.Errorf("%s: cert9.db exists: %v, certutil used: %v", db, !withCertutil, withCertutil)
		}
		for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, pkcs11txt): 0o600} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode().Perm(), want, err)
			}
		}
	}
	before := read(t, filepath.Join(home, newNSSDB, pkcs11txt))
	rs, err = Register(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Changed || r.State != Registered {
			t.Errorf("second register: %+v", r)
		}
	}
	if read(t, filepath.Join(home, newNSSDB, pkcs11txt)) != before {
		t.Fatal("the second register changed the file")
	}
}

// TestChromiumNewDatabaseOnly: a Chromium 146+ user has only the new
// database; the legacy one must not appear, or Chromium would switch to it.
func TestChromiumNewDatabaseOnly(t *testing.T) {
	home := t.TempDir()
	write(t, filepath.Join(home, newNSSDB, pkcs11txt), certutilDB)
	rs, err := Register(Config{Home: home, Module: fakeModule(t, home)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Name != "~/"+newNSSDB || rs[0].State != Registered {
		t.Fatalf("%+v", rs)
	}
	if exists(filepath.Join(home, legacyNSSDB)) {
		t.Fatal("the legacy database was created next to the new one")
	}
	txt := read(t, filepath.Join(home, newNSSDB, pkcs11txt))
	if !strings.HasPrefix(txt, strings.TrimRight(certutilDB, "\n")+"\n\nlibrary=") {
		t.Fatalf("the other entries were not kept as they were:\n%s", txt)
	}
}

// TestReplacesStaleEntries: an entry of an older install (another path),
// or one added with modutil without FRIENDLY, is replaced, not doubled.
func TestReplacesStaleEntries(t *testing.T) {
	home := t.TempDir()
	mod := fakeModule(t, filepath.Join(home, "new"))
	db := filepath.Join(home, legacyNSSDB)
	write(t, filepath.Join(db, pkcs11txt), certutilDB+"\nlibrary=/old/lib/libcie-pkcs11.so\nname=CIE test\nNSS=slotParams={0x00000001=[slotFlags=PublicCerts ] }  \n")
	st, err := Status(Config{Home: home, Module: mod})
	if err != nil || len(st) != 1 || st[0].State != Stale || st[0].Library != "/old/lib/libcie-pkcs11.so" {
		t.Fatalf("%+v %v", st, err)
	}
	write(t, filepath.Join(db, pkcs11txt), certutilDB+"\nlibrary="+mod+"\nname=CIE Desktop\n")
	if st, _ := Status(Config{Home: home, Module: mod}); st[0].State != Stale {
		t.Fatalf("an entry without FRIENDLY: %v", st[0].State)
	}
	if _, err := Register(Config{Home: home, Module: mod}); err != nil {
		t.Fatal(err)
	}
	txt := read(t, filepath.Join(db, pkcs11txt))
	if strings.Count(txt, "libcie-pkcs11.so") != 1 || !strings.Contains(txt, "library="+mod+"\n") || !strings.Contains(txt, "name=Other token") {
		t.Fatalf("after register:\n%s", txt)
	}
}

func TestUnregister(t *testing.T) {
	home := t.TempDir()
	mod := fakeModule(t, home)
	write(t, filepath.Join(home, legacyNSSDB, pkcs11txt), certutilDB)
	cfg := Config{Home: home, Module: mod}
	if _, err := Register(cfg); err != nil {
		t.Fatal(err)
	}
	rs, err := Unregister(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !rs[0].Changed || rs[0].State != NotRegistered {
		t.Fatalf("%+v", rs)
	}
	if got := read(t, filepath.Join(home, legacyNSSDB, pkcs11txt)); got != certutilDB {
		t.Fatalf("unregister did not restore the file:\n%s", got)
	}
	rs, _ = Unregister(cfg)
	if rs[0].Changed {
		t.Fatal("the second unregister changed something")
	}
}

func TestFirefoxProfiles(t *testing.T) {
	home := t.TempDir()
	mod := fakeModule(t, home)
	ff := filepath.Join(home, ".mozilla", "firefox")
	abs := filepath.Join(home, "elsewhere", "work.profile")
	write(t, filepath.Join(ff, "profiles.ini"), "[Install4F96D1932A9F858E]\nDefault=abcd.default-esr\n\n"+
		"[Profile0]\nName=default-esr\nIsRelative=1\nPath=abcd.default-esr\nDefault=1\n\n"+
		"[Profile1]\nName=work\nIsRelative=0\nPath="+abs+"\n\n"+
		"[Profile2]\nName=deleted\nIsRelative=1\nPath=gone.deleted\n\n[General]\nStartWithLastProfile=1\n")
	write(t, filepath.Join(ff, "abcd.default-esr", pkcs11txt), certutilDB)
	if err := os.MkdirAll(abs, 0o700); err != nil { // never started: no database yet
		t.Fatal(err)
	}
	if err := os.Symlink("127.0.0.1:+4242", filepath.Join(abs, "lock")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(home, "snap/firefox/common/.mozilla/firefox/profiles.ini"), "[Profile0]\nName=snap\nPath=s.default\n")
	if err := os.MkdirAll(filepath.Join(home, "snap/firefox/common/.mozilla/firefox/s.default"), 0o700); err != nil {
		t.Fatal(err)
	}
	rs, err := Register(Config{Home: home, Module: mod})
	if err != nil {
		t.Fatal(err)
	}
	got := byName(rs)
	if len(got) != 5 { // two Chromium databases, three profiles
		t.Fatalf("%d targets: %v", len(got), got)
	}
	for _, name := range []string{"default-esr", "work", "snap"} {
		r := got["Firefox profile "+name]
		if r.State != Registered || !r.Changed {
			t.Errorf("%s: %+v", name, r)
		}
		if !strings.Contains(read(t, filepath.Join(r.Path, pkcs11txt)), "name=CIE Desktop\n") {
			t.Errorf("%s: no entry", name)
		}
	}
	if !got["Firefox profile work"].InUse || got["Firefox profile default-esr"].InUse {
		t.Error("the open profile is not the one reported in use")
	}
	if _, ok := got["Firefox profile deleted"]; ok {
		t.Error("a profile without a directory was registered")
	}
}

func TestFirefoxPolicy(t *testing.T) {
	home := t.TempDir()
	mod := fakeModule(t, home)
	policy := filepath.Join(t.TempDir(), "etc", "firefox", "policies", "policies.json")
	cfg := Config{Home: home, Module: mod, PolicyFiles: []string{policy}}

	st, _ := Status(cfg)
	if r := byName(st)["Firefox policy "+policy]; r.State != Absent {
		t.Fatalf("before: %v", r.State)
	}
	if _, err := Register(cfg); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies struct {
			SecurityDevices struct {
				Add    map[string]string
				Delete []string
			}
			DisableTelemetry bool
		} `json:"policies"`
	}
	parse := func() {
		t.Helper()
		doc.Policies.SecurityDevices.Add, doc.Policies.SecurityDevices.Delete = nil, nil
		if err := json.Unmarshal([]byte(read(t, policy)), &doc); err != nil {
			t.Fatal(err)
		}
	}
	parse()
	if doc.Policies.SecurityDevices.Add[ModuleName] != mod {
		t.Fatalf("policy:\n%s", read(t, policy))
	}
	if fi, _ := os.Stat(policy); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v: Firefox must be able to read it", fi.Mode())
	}

	// Other policies and devices are kept.
	write(t, policy, `{"policies": {"DisableTelemetry": true, "SecurityDevices": {"Add": {"Other": "/usr/lib/other.so"}}}}`)
	if _, err := Register(cfg); err != nil {
		t.Fatal(err)
	}
	parse()
	if !doc.Policies.DisableTelemetry || doc.Policies.SecurityDevices.Add["Other"] != "/usr/lib/other.so" || doc.Policies.SecurityDevices.Add[ModuleName] != mod {
		t.Fatalf("policy:\n%s", read(t, policy))
	}
	if rs, _ := Register(cfg); byName(rs)["Firefox policy "+policy].Changed {
		t.Fatal("registering twice rewrote the policy")
	}

	// Unregister asks Firefox to delete the module from the profiles.
	if _, err := Unregister(cfg); err != nil {
		t.Fatal(err)
	}
	parse()
	if _, ok := doc.Policies.SecurityDevices.Add[ModuleName]; ok || len(doc.Policies.SecurityDevices.Delete) != 1 || doc.Policies.SecurityDevices.Delete[0] != ModuleName {
		t.Fatalf("after unregister:\n%s", read(t, policy))
	}
	if _, err := Register(cfg); err != nil {
		t.Fatal(err)
	}
	parse()
	if len(doc.Policies.SecurityDevices.Delete) != 0 || doc.Policies.SecurityDevices.Add[ModuleName] != mod {
		t.Fatalf("after registering again:\n%s", read(t, policy))
	}

	// The older form {name: path} is kept in its form.
	write(t, policy, `{"policies": {"SecurityDevices": {"Other": "/usr/lib/other.so"}}}`)
	if _, err := Register(cfg); err != nil {
		t.Fatal(err)
	}
	var legacy struct {
		Policies struct{ SecurityDevices map[string]string } `json:"policies"`
	}
	if err := json.Unmarshal([]byte(read(t, policy)), &legacy); err != nil || legacy.Policies.SecurityDevices[ModuleName] != mod || legacy.Policies.SecurityDevices["Other"] == "" {
		t.Fatalf("legacy form:\n%s", read(t, policy))
	}

	write(t, policy, `{"policies": [`)
	if _, err := Register(cfg); err == nil || !strings.Contains(err.Error(), "Firefox policies") {
		t.Fatalf("a broken policies.json: %v", err)
	}
}

func TestCheckModule(t *testing.T) {
	dir := t.TempDir()
	if err := CheckModule("lib/libcie-pkcs11.so"); err == nil {
		t.Error("a relative path was accepted")
	}
	text := filepath.Join(dir, "x.so")
	write(t, text, "not a library")
	if err := CheckModule(text); err == nil {
		t.Error("a text file was accepted")
	}
	if _, err := Register(Config{Home: dir, Module: text}); err == nil {
		t.Error("registered a text file")
	}
	if exists(filepath.Join(dir, legacyNSSDB)) {
		t.Error("a failed register wrote a database")
	}
	if _, err := Targets(Config{Home: "relative"}); err == nil {
		t.Error("a relative home was accepted")
	}
}

func TestFindModule(t *testing.T) {
	root := t.TempDir()
	mod := fakeModule(t, filepath.Join(root, "lib"))
	got, err := FindModule(filepath.Join(root, "bin", "cie"))
	if err != nil || got != mod {
		t.Fatalf("%q %v, want %q", got, err, mod)
	}
	same := fakeModule(t, filepath.Join(root, "bin2"))
	if got, _ := FindModule(filepath.Join(root, "bin2", "cie")); got != same {
		t.Fatalf("%q, want %q", got, same)
	}
}

// TestNSSReadsTheDatabase: NSS's own tools open a database this package
// created and list the module in it (p11-kit's trust module stands in for
// libcie-pkcs11, which needs a build).
func TestNSSReadsTheDatabase(t *testing.T) {
	const trust = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so"
	if _, err := os.Stat(trust); err != nil {
		t.Fatalf("p11-kit-modules is not installed (scripts/install-deps.sh installs p11-kit): %v", err)
	}
	home := t.TempDir()
	if _, err := Register(Config{Home: home, Module: trust}); err != nil {
		t.Fatal(err)
	}
	db := "sql:" + filepath.Join(home, newNSSDB)
	out, err := exec.Command("modutil", "-dbdir", db, "-list").CombinedOutput()
	if err != nil {
		t.Fatalf("modutil -list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CIE Desktop") || !strings.Contains(string(out), "library name: "+trust) ||
		!strings.Contains(string(out), "NSS Internal PKCS #11 Module") {
		t.Fatalf("modutil -list:\n%s", out)
	}
	if out, err := exec.Command("certutil", "-L", "-d", db).CombinedOutput(); err != nil {
		t.Fatalf("certutil -L on the new database: %v\n%s", err, out)
	}
	if !exists(filepath.Join(home, newNSSDB, "cert9.db")) {
		t.Fatal("NSS did not complete the database")
	}
}

// TestChromiumInUse: a Chromium-family browser is reported running from
// its SingletonLock ("HOST-PID"): this host with a live process, or
// another host; a lock left by a dead process of this host is not.
func TestChromiumInUse(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dead := 1 << 22 // above Linux's pid_max limit: never a process
	cases := []struct {
		name, dir, lock string
		want            bool
	}{
		{"no browser ever started", "", "", false},
		{"Chromium running", ".config/chromium", host + "-" + strconv.Itoa(os.Getpid()), true},
		{"Chrome running", ".config/google-chrome", host + "-" + strconv.Itoa(os.Getpid()), true},
		{"left by a crash", ".config/chromium", host + "-" + strconv.Itoa(dead), false},
		{"another host's", ".config/chromium", "elsewhere.example-" + strconv.Itoa(dead), true},
		{"unreadable lock", ".config/chromium", "garbage", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			mod := fakeModule(t, home)
			if c.dir != "" {
				if err := os.MkdirAll(filepath.Join(home, c.dir), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(c.lock, filepath.Join(home, c.dir, "SingletonLock")); err != nil {
					t.Fatal(err)
				}
			}
			rs, err := Register(Config{Home: home, Module: mod})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range rs {
				if r.Kind != ChromiumDB {
					continue
				}
				n++
				if r.InUse != c.want {
					t.Errorf("%s: InUse %v, want %v", r.Name, r.InUse, c.want)
				}
			}
			if n == 0 {
				t.Fatal("no Chromium database reported")
			}
		})
	}
}
