package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// The hardening tests of issue 9 drive libcie-pkcs11 out of process with
// p11hard, a C program compiled by the test (hardHarnessSource below). It
// extends p11harness of pkcs11_test.go: a line-driven mode for the fault
// scenarios, mixed concurrent operations with a blocked
// C_WaitForSlotEvent, C_Finalize while other threads work, and fork with
// live sessions followed by exec.

// TestConcurrency runs the module under concurrent load through pcscd +
// vpcd + cie-sim.
func TestConcurrency(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())
	harness := buildHardHarness(t)
	holder := stateCertificate(t)

	t.Run("16 threads: sign, find, attributes, a blocked wait", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "nxp")
		p := newP11(t, module, card.Reader())
		p.pair()
		start := time.Now()
		out, code := p.runBounded(90*time.Second, harness, "mixed", module, card.Reader(), defaultPIN, "16", "12")
		if code != 0 {
			t.Fatalf("p11hard mixed exited %d:\n%s", code, lastLines(out, 30))
		}
		// 16 threads × 12 iterations, a third of them signatures, then the
		// unlocked phase's signatures.
		n := verifySignatures(t, out, holder)
		mustMatch(t, "mixed", out, `(?m)^phase1 ok sign 64 find 64 attr 64$`)
		m := regexp.MustCompile(`(?m)^phase2 sign (\d+) busy (\d+) find (\d+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no phase 2 summary:\n%s", lastLines(out, 20))
		}
		if signed, _ := strconv.Atoi(m[1]); n != 64+signed || signed == 0 {
			t.Fatalf("%d signatures verified, want 64 + %s (phase 2)", n, m[1])
		}
		mustMatch(t, "mixed", out, `(?m)^waiter 0x190$`) // CKR_CRYPTOKI_NOT_INITIALIZED after C_Finalize
		t.Logf("%d signatures, phase 2 (one session, no application lock): %s signed, %s refused as busy, %s searches; %v",
			n, m[1], m[2], m[3], time.Since(start).Round(time.Millisecond))
		if tries, _ := card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after the concurrent run: %s", tries)
		}
	})

	t.Run("C_Finalize while 8 threads work", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "gemalto")
		p := newP11(t, module, card.Reader())
		p.pair()
		out, code := p.runBounded(60*time.Second, harness, "finalize", module, card.Reader(), defaultPIN, "8")
		if code != 0 {
			t.Fatalf("p11hard finalize exited %d:\n%s", code, lastLines(out, 30))
		}
		mustMatch(t, "finalize", out, `(?m)^finalize 0x0$`)
		mustMatch(t, "finalize", out, `(?m)^stopped 8 of 8$`)
		mustMatch(t, "finalize", out, `(?m)^waiter 0x190$`)
		mustMatch(t, "finalize", out, `(?m)^reinitialised: sign 0x0$`)
		if n := verifySignatures(t, out, holder); n == 0 {
			t.Fatal("no signature was made before C_Finalize: the threads did not work")
		}
		t.Logf("return values seen by the working threads:\n%s", strings.Join(regexp.MustCompile(`(?m)^seen .*$`).FindAllString(out, -1), "\n"))
	})

	t.Run("fork with live sessions, then exec", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "stm3")
		p := newP11(t, module, card.Reader())
		p.pair()
		out, code := p.runBounded(60*time.Second, harness, "fork", module, card.Reader(), defaultPIN)
		if code != 0 || strings.Contains(out, "FAIL") {
			t.Fatalf("p11hard fork exited %d:\n%s", code, out)
		}
		for _, want := range []string{
			`child without exec: 0`, `child after exec: 0`, `parent after fork: sign 0x0`, `waiter 0x190`,
		} {
			mustMatch(t, "fork", out, `(?m)^`+regexp.QuoteMeta(want)+`$`)
		}
		if n := verifySignatures(t, out, holder); n < 2 {
			t.Fatalf("%d signatures, want one before and one after the fork", n)
		}
	})

	t.Run("module and cie CLI on one card at once", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "actalis")
		p := newP11(t, module, card.Reader())
		p.pair()
		cli := testbench.BuildBinary(t, "./cmd/cie")
		signer := buildHarness(t) // p11harness of pkcs11_test.go: signatures, logging in again when told to
		dir := t.TempDir()
		doc := filepath.Join(dir, "lettera.txt")
		if err := os.WriteFile(doc, []byte("Egregio Sindaco,\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		type result struct {
			out  string
			code int
		}
		done := make(chan result, 1)
		go func() {
			out, code := p.run(signer, "sign", module, card.Reader(), defaultPIN, "1", "20", "relogin", "30")
			done <- result{out, code}
		}()
		// Meanwhile the citizen uses the CLI on the same card: every
		// command must succeed, whatever the module does in between.
		var cliRuns int
		deadline := time.After(60 * time.Second)
	loop:
		for i := 0; ; i++ {
			select {
			case r := <-done:
				if r.code != 0 {
					t.Fatalf("the module's process failed (exit %d):\n%s", r.code, lastLines(r.out, 20))
				}
				if n := verifySignatures(t, r.out, holder); n != 20 {
					t.Fatalf("%d signatures from the module, want 20", n)
				}
				t.Logf("module: %s", regexp.MustCompile(`relogins \d+`).FindString(r.out))
				break loop
			case <-deadline:
				t.Fatal("the module's process did not finish within 60 s")
			default:
			}
			var r result
			switch i % 3 {
			case 0:
				rr := runCIE(t, cli, card.Reader(), "", "status")
				r = result{rr.stdout + rr.stderr, rr.code}
			case 1:
				rr := runCIE(t, cli, card.Reader(), defaultPIN+"\n", "--pin-stdin", "cert")
				r = result{rr.stdout + rr.stderr, rr.code}
			case 2:
				rr := runCIE(t, cli, card.Reader(), defaultPIN+"\n", "--pin-stdin", "sign", doc, "-o", filepath.Join(dir, fmt.Sprintf("s%d.p7m", i)))
				r = result{rr.stdout + rr.stderr, rr.code}
			}
			if r.code != 0 {
				t.Errorf("cie command %d (%s) failed while the module signed, exit %d:\n%s",
					i, []string{"status", "cert", "sign"}[i%3], r.code, r.out)
			}
			cliRuns++
		}
		if cliRuns < 3 {
			t.Fatalf("only %d CLI commands ran during the module's signatures", cliRuns)
		}
		t.Logf("%d CLI commands ran while the module signed", cliRuns)
		if tries, _ := card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after module and CLI together: %s", tries)
		}
	})
}

// runBounded is run with a time limit: a hang is a failure with the
// output so far, not a stuck test.
func (p *p11) runBounded(limit time.Duration, name string, args ...string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = p.env()
	cmd.Dir = p.home
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		p.t.Fatalf("%s %q hung: killed after %v; output:\n%s", filepath.Base(name), args, limit, lastLines(string(out), 30))
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		p.t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}

// buildHardHarness compiles p11hard against the module's headers into a
// temporary directory of the test.
func buildHardHarness(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "p11hard.c")
	if err := os.WriteFile(src, []byte(hardHarnessSource), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "p11hard")
	include := filepath.Join(testbench.ModuleRoot(t), "cmd", "cie-pkcs11", "include")
	if out, err := exec.Command("gcc", "-Wall", "-Werror", "-O2", "-I", include, "-o", bin, src, "-ldl", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("compiling p11hard: %v\n%s", err, out)
	}
	return bin
}

// Return values the tests name (pkcs11t.h).
const (
	rvOK                   = 0x000
	rvFunctionFailed       = 0x006
	rvDeviceError          = 0x030
	rvDeviceRemoved        = 0x032
	rvSessionClosed        = 0x0B0
	rvSessionHandleInvalid = 0x0B3
	rvTokenNotPresent      = 0x0E0
	rvUserNotLoggedIn      = 0x101
	rvNotInitialized       = 0x190
)

// p11Repl is p11hard's line mode: one module in one process, driven
// command by command. Every command answers one line
// "rv 0x<CK_RV> ms <duration> [details]"; "sign" first prints "signing"
// just before C_Sign.
type p11Repl struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	exit  chan error
	mu    sync.Mutex
	trail []string // the conversation, for failure messages
}

// p11Reply is one answer of p11hard's line mode.
type p11Reply struct {
	rv     uint64
	took   time.Duration
	detail string
}

// callLimit bounds every module call: more is a hang.
const callLimit = 20 * time.Second

func startRepl(t *testing.T, harness, module string, env []string) *p11Repl {
	t.Helper()
	cmd := exec.Command(harness, "repl", module)
	cmd.Env = env
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &p11Repl{t: t, cmd: cmd, in: in, lines: make(chan string, 64), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		r.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-r.exit:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
	return r
}

func (r *p11Repl) note(s string) {
	r.mu.Lock()
	r.trail = append(r.trail, s)
	r.mu.Unlock()
}

func (r *p11Repl) transcript() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.trail, "\n")
}

// send writes one command without waiting for its answer.
func (r *p11Repl) send(cmd string) {
	r.t.Helper()
	r.note("> " + cmd)
	if _, err := io.WriteString(r.in, cmd+"\n"); err != nil {
		r.t.Fatalf("p11hard: sending %q: %v (crashed?)\n%s", cmd, err, r.transcript())
	}
}

// expect waits for the next line with prefix, within callLimit. A hang or
// the harness's death fails the test.
func (r *p11Repl) expect(prefix string) string {
	r.t.Helper()
	timeout := time.After(callLimit)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				err := <-r.exit
				r.exit <- err
				r.t.Fatalf("p11hard died (%v) while waiting for %q: a crash of the module\n%s", err, prefix, r.transcript())
			}
			r.note("< " + line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			r.t.Fatalf("p11hard: no %q within %v: the module hangs\n%s", prefix, callLimit, r.transcript())
		}
	}
}

// reply waits for the answer of the command sent last.
func (r *p11Repl) reply() p11Reply {
	r.t.Helper()
	line := r.expect("rv ")
	var rep p11Reply
	var ms int64
	if _, err := fmt.Sscanf(line, "rv 0x%x ms %d", &rep.rv, &ms); err != nil {
		r.t.Fatalf("p11hard: bad answer %q", line)
	}
	rep.took = time.Duration(ms) * time.Millisecond
	if f := strings.SplitN(line, " ", 5); len(f) == 5 {
		rep.detail = f[4]
	}
	return rep
}

// do runs one command and returns its answer.
func (r *p11Repl) do(cmd string) p11Reply {
	r.t.Helper()
	r.send(cmd)
	return r.reply()
}

// must runs one command and wants CKR_OK.
func (r *p11Repl) must(cmd string) p11Reply {
	r.t.Helper()
	rep := r.do(cmd)
	if rep.rv != rvOK {
		r.t.Fatalf("p11hard %q: %s, want CKR_OK\n%s", cmd, rvName(rep.rv), r.transcript())
	}
	return rep
}

// signature returns the signature of a "sign" answer.
func (rep p11Reply) signature(t *testing.T) []byte {
	t.Helper()
	sig, err := hex.DecodeString(strings.TrimPrefix(rep.detail, "sig "))
	if err != nil || len(sig) == 0 {
		t.Fatalf("no signature in %q", rep.detail)
	}
	return sig
}

// verifies checks a SHA256-RSA-PKCS signature of msg against the holder
// certificate's key.
func verifies(t *testing.T, msg string, sig []byte) {
	t.Helper()
	d := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(stateCertificate(t).PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Fatalf("the signature of %q does not verify against the certificate", msg)
	}
}

// rvName names the return values these tests meet.
func rvName(rv uint64) string {
	names := map[uint64]string{
		rvOK: "CKR_OK", rvFunctionFailed: "CKR_FUNCTION_FAILED", rvDeviceError: "CKR_DEVICE_ERROR",
		rvDeviceRemoved: "CKR_DEVICE_REMOVED", rvSessionClosed: "CKR_SESSION_CLOSED",
		rvSessionHandleInvalid: "CKR_SESSION_HANDLE_INVALID", rvTokenNotPresent: "CKR_TOKEN_NOT_PRESENT",
		rvUserNotLoggedIn: "CKR_USER_NOT_LOGGED_IN", rvNotInitialized: "CKR_CRYPTOKI_NOT_INITIALIZED",
		0x005: "CKR_GENERAL_ERROR", 0x0A0: "CKR_PIN_INCORRECT", 0x0A4: "CKR_PIN_LOCKED",
		0x050: "CKR_FUNCTION_CANCELED", 0x003: "CKR_SLOT_ID_INVALID", 0x091: "CKR_OPERATION_NOT_INITIALIZED",
	}
	if n, ok := names[rv]; ok {
		return n
	}
	return fmt.Sprintf("CK_RV 0x%X", rv)
}

// hardHarnessSource is p11hard.c.
const hardHarnessSource = `// p11hard: drives libcie-pkcs11 from C for the hardening tests.
//
//   p11hard repl     MODULE                            line commands on stdin
//   p11hard mixed    MODULE READER PIN THREADS COUNT   concurrent sign/find/attributes + a blocked wait
//   p11hard finalize MODULE READER PIN THREADS         C_Finalize while THREADS threads work
//   p11hard fork     MODULE READER PIN                 fork with live sessions; child without and with exec
//   p11hard forkchild MODULE READER                    (run by fork after exec)
#define CK_PTR *
#define CK_DEFINE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#define NULL_PTR 0
#include "pkcs11.h"
#include "pkcs11_3_0.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static CK_FUNCTION_LIST_3_0_PTR p11;

static void load(const char *path) {
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		printf("FAIL dlopen: %s\n", dlerror());
		exit(100);
	}
	CK_C_GetInterface gi = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
	CK_INTERFACE_PTR iface;
	if (!gi || gi(NULL, NULL, &iface, 0) != CKR_OK) {
		printf("FAIL C_GetInterface\n");
		exit(100);
	}
	p11 = (CK_FUNCTION_LIST_3_0_PTR)iface->pFunctionList;
}

static CK_RV initialize(void) {
	CK_C_INITIALIZE_ARGS a;
	memset(&a, 0, sizeof a);
	a.flags = CKF_OS_LOCKING_OK;
	return p11->C_Initialize(&a);
}

static long long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// find_slot finds the slot of a reader by its description.
static CK_RV find_slot(const char *reader, CK_BBOOL present, CK_SLOT_ID *slot) {
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	size_t len = strlen(reader);
	CK_RV rv = p11->C_GetSlotList(present, slots, &n);
	if (rv != CKR_OK) return rv;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_SLOT_INFO si;
		if (p11->C_GetSlotInfo(slots[i], &si) == CKR_OK && len <= 64 && strncmp((char *)si.slotDescription, reader, len) == 0 &&
		    (len == 64 || si.slotDescription[len] == ' ')) {
			*slot = slots[i];
			return CKR_OK;
		}
	}
	return CKR_SLOT_ID_INVALID;
}

// find_one returns the first object of a class, 0 when there is none.
static CK_RV find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *h) {
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
	CK_ULONG n = 0;
	*h = 0;
	CK_RV rv = p11->C_FindObjectsInit(s, &t, 1);
	if (rv != CKR_OK) return rv;
	rv = p11->C_FindObjects(s, h, 1, &n);
	CK_RV rv2 = p11->C_FindObjectsFinal(s);
	if (n == 0) *h = 0;
	return rv != CKR_OK ? rv : rv2;
}

// sign_msg signs msg with CKM_SHA256_RSA_PKCS; marker prints "signing"
// just before C_Sign, so that the driver can act during the card work.
static CK_RV sign_msg(CK_SESSION_HANDLE s, const char *msg, CK_BYTE *sig, CK_ULONG *n, int marker) {
	CK_OBJECT_HANDLE key;
	CK_RV rv = find_one(s, CKO_PRIVATE_KEY, &key);
	if (rv != CKR_OK) return rv;
	if (key == 0) return CKR_USER_NOT_LOGGED_IN; // logged out: the private key is hidden
	CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
	rv = p11->C_SignInit(s, &m, key);
	if (rv != CKR_OK) return rv;
	if (marker) {
		printf("signing\n");
		fflush(stdout);
	}
	*n = 512;
	return p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, n);
}

static void hexs(char *dst, const CK_BYTE *b, CK_ULONG n) {
	for (CK_ULONG i = 0; i < n; i++) sprintf(dst + 2 * i, "%02x", b[i]);
	dst[2 * n] = 0;
}

// ---- repl: one command per line, one "rv 0x.. ms N [detail]" answer ----

static int repl(const char *path) {
	load(path);
	CK_SLOT_ID slot = 0;
	CK_SESSION_HANDLE sess = 0;
	char line[1024];
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\r\n")] = 0;
		char *arg = strchr(line, ' ');
		if (arg) *arg++ = 0;
		else arg = "";
		char detail[1200] = "";
		long long t0 = now_ms();
		CK_RV rv = CKR_OK;
		if (!strcmp(line, "init")) {
			rv = initialize();
		} else if (!strcmp(line, "finalize")) {
			rv = p11->C_Finalize(NULL);
		} else if (!strcmp(line, "slot")) {
			rv = find_slot(arg, CK_FALSE, &slot);
			snprintf(detail, sizeof detail, "slot %lu", (unsigned long)slot);
		} else if (!strcmp(line, "present")) {
			CK_SLOT_ID slots[16];
			CK_ULONG n = 16;
			int present = 0;
			rv = p11->C_GetSlotList(CK_TRUE, slots, &n);
			for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) present |= slots[i] == slot;
			snprintf(detail, sizeof detail, "present %d", present);
		} else if (!strcmp(line, "token")) {
			CK_TOKEN_INFO ti;
			rv = p11->C_GetTokenInfo(slot, &ti);
			if (rv == CKR_OK) snprintf(detail, sizeof detail, "flags 0x%lx label %.32s", (unsigned long)ti.flags, ti.label);
		} else if (!strcmp(line, "open")) {
			rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &sess);
			snprintf(detail, sizeof detail, "session %lu", (unsigned long)sess);
		} else if (!strcmp(line, "close")) {
			rv = p11->C_CloseSession(sess);
		} else if (!strcmp(line, "login")) {
			rv = p11->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR)arg, strlen(arg));
		} else if (!strcmp(line, "sologin")) {
			rv = p11->C_Login(sess, CKU_SO, (CK_UTF8CHAR_PTR)arg, strlen(arg));
		} else if (!strcmp(line, "logout")) {
			rv = p11->C_Logout(sess);
		} else if (!strcmp(line, "sign")) {
			CK_BYTE sig[512];
			CK_ULONG n = 0;
			rv = sign_msg(sess, arg, sig, &n, 1);
			if (rv == CKR_OK) {
				strcpy(detail, "sig ");
				hexs(detail + 4, sig, n);
			}
		} else if (!strcmp(line, "objects")) {
			CK_OBJECT_HANDLE h[16];
			CK_ULONG n = 0;
			rv = p11->C_FindObjectsInit(sess, NULL, 0);
			if (rv == CKR_OK) rv = p11->C_FindObjects(sess, h, 16, &n);
			p11->C_FindObjectsFinal(sess);
			snprintf(detail, sizeof detail, "objects %lu", (unsigned long)n);
		} else if (!strcmp(line, "session")) {
			CK_SESSION_INFO si;
			rv = p11->C_GetSessionInfo(sess, &si);
			if (rv == CKR_OK) snprintf(detail, sizeof detail, "state %lu", (unsigned long)si.state);
		} else {
			rv = CKR_FUNCTION_NOT_SUPPORTED;
			snprintf(detail, sizeof detail, "unknown command %s", line);
		}
		printf("rv 0x%lx ms %lld %s\n", (unsigned long)rv, now_ms() - t0, detail);
		fflush(stdout);
	}
	return 0;
}

// ---- shared state of the threaded modes ----

static const char *pin;
static CK_SLOT_ID slot;
static CK_SESSION_HANDLE shared;
static CK_OBJECT_HANDLE cert_h, key_h;
static CK_BYTE refcert[8192];
static CK_ULONG refcert_len;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER, out_mu = PTHREAD_MUTEX_INITIALIZER;
static int count, errors;

static void fail(const char *what, long id, int i, CK_RV rv) {
	pthread_mutex_lock(&out_mu);
	printf("error %s thread %ld iteration %d: 0x%lx\n", what, id, i, (unsigned long)rv);
	errors++;
	pthread_mutex_unlock(&out_mu);
}

static void print_sig(const char *msg, const CK_BYTE *sig, CK_ULONG n) {
	char h[1100];
	hexs(h, sig, n);
	pthread_mutex_lock(&out_mu);
	printf("sig %s|%s\n", msg, h);
	pthread_mutex_unlock(&out_mu);
}

// read_value reads an attribute with the two-call protocol.
static CK_RV read_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, CK_BYTE *buf, CK_ULONG *len) {
	CK_ATTRIBUTE a = {type, NULL, 0};
	CK_RV rv = p11->C_GetAttributeValue(s, h, &a, 1);
	if (rv != CKR_OK) return rv;
	if (a.ulValueLen > *len) return CKR_BUFFER_TOO_SMALL;
	a.pValue = buf;
	rv = p11->C_GetAttributeValue(s, h, &a, 1);
	*len = a.ulValueLen;
	return rv;
}

static CK_RV waiter_rv = 0xFFFF;
static int waiter_events;

// waiter blocks in C_WaitForSlotEvent until C_Finalize ends the wait
// (other tests insert and remove cards in the shared pcscd: real events
// return CKR_OK, and it waits again).
static void *waiter(void *arg) {
	CK_SLOT_ID id;
	CK_RV rv;
	while ((rv = p11->C_WaitForSlotEvent(0, &id, NULL)) == CKR_OK) __atomic_add_fetch(&waiter_events, 1, __ATOMIC_SEQ_CST);
	waiter_rv = rv;
	return NULL;
}

static int setup(const char *path, const char *reader) {
	load(path);
	CK_RV rv = initialize();
	if (rv == CKR_OK) rv = find_slot(reader, CK_TRUE, &slot);
	if (rv == CKR_OK) rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &shared);
	if (rv == CKR_OK) rv = p11->C_Login(shared, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv == CKR_OK) rv = find_one(shared, CKO_CERTIFICATE, &cert_h);
	if (rv == CKR_OK) rv = find_one(shared, CKO_PRIVATE_KEY, &key_h);
	refcert_len = sizeof refcert;
	if (rv == CKR_OK) rv = read_value(shared, cert_h, CKA_VALUE, refcert, &refcert_len);
	if (rv != CKR_OK || cert_h == 0 || key_h == 0) {
		printf("error setup 0x%lx (certificate %lu, key %lu)\n", (unsigned long)rv, (unsigned long)cert_h, (unsigned long)key_h);
		return 1;
	}
	return 0;
}

// ---- mixed: 16 threads, shared and own sessions ----

static int n_sign, n_find, n_attr;

static void *mixed_worker(void *arg) {
	long id = (long)arg;
	int own = id % 2;
	CK_SESSION_HANDLE s = shared;
	CK_RV rv;
	if (own && (rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s)) != CKR_OK) {
		fail("C_OpenSession", id, -1, rv);
		return NULL;
	}
	for (int i = 0; i < count; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "thread %ld message %d", id, i);
		switch ((id + i) % 3) {
		case 0: { // a signature: stateful, so the shared session is locked
			CK_BYTE sig[512];
			CK_ULONG n;
			if (!own) pthread_mutex_lock(&shared_mu);
			rv = sign_msg(s, msg, sig, &n, 0);
			if (!own) pthread_mutex_unlock(&shared_mu);
			if (rv != CKR_OK) fail("C_Sign", id, i, rv);
			else print_sig(msg, sig, n);
			__atomic_add_fetch(&n_sign, 1, __ATOMIC_SEQ_CST);
			break;
		}
		case 1: { // a search: stateful too
			CK_OBJECT_HANDLE h;
			if (!own) pthread_mutex_lock(&shared_mu);
			rv = find_one(s, CKO_CERTIFICATE, &h);
			if (!own) pthread_mutex_unlock(&shared_mu);
			if (rv != CKR_OK || h != cert_h) fail("C_FindObjects", id, i, rv);
			__atomic_add_fetch(&n_find, 1, __ATOMIC_SEQ_CST);
			break;
		}
		case 2: { // attributes: stateless, no lock even on the shared session
			CK_BYTE buf[8192], mod[512];
			CK_ULONG len = sizeof buf, mlen = sizeof mod;
			rv = read_value(s, cert_h, CKA_VALUE, buf, &len);
			if (rv != CKR_OK || len != refcert_len || memcmp(buf, refcert, len) != 0) fail("C_GetAttributeValue CKA_VALUE", id, i, rv);
			rv = read_value(s, key_h, CKA_MODULUS, mod, &mlen);
			if (rv != CKR_OK || mlen != 256) fail("C_GetAttributeValue CKA_MODULUS", id, i, rv);
			CK_BYTE d[8];
			CK_ATTRIBUTE sens = {CKA_PRIVATE_EXPONENT, d, sizeof d};
			rv = p11->C_GetAttributeValue(s, key_h, &sens, 1);
			if (rv != CKR_ATTRIBUTE_SENSITIVE || sens.ulValueLen != CK_UNAVAILABLE_INFORMATION) fail("C_GetAttributeValue CKA_PRIVATE_EXPONENT", id, i, rv);
			__atomic_add_fetch(&n_attr, 1, __ATOMIC_SEQ_CST);
			break;
		}
		}
	}
	if (own) p11->C_CloseSession(s);
	return NULL;
}

static int p2_sign, p2_busy, p2_find;

// unlocked_worker uses the shared session with no application lock: the
// module must serialise, refuse what overlaps (CKR_OPERATION_ACTIVE,
// CKR_OPERATION_NOT_INITIALIZED) and never mix two threads' operations
// into a wrong result.
static void *unlocked_worker(void *arg) {
	long id = (long)arg;
	for (int i = 0; i < 6; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "unlocked thread %ld message %d", id, i);
		CK_RV rv;
		if ((id + i) % 2 == 0) {
			CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
			CK_BYTE sig[512];
			CK_ULONG n = sizeof sig;
			rv = p11->C_SignInit(shared, &m, key_h);
			if (rv == CKR_OK || rv == CKR_OPERATION_ACTIVE) {
				// Another thread's C_SignInit may be the one this C_Sign
				// completes: the signature is over this thread's message
				// either way, with the same mechanism.
				rv = p11->C_Sign(shared, (CK_BYTE_PTR)msg, strlen(msg), sig, &n);
			}
			if (rv == CKR_OK) {
				print_sig(msg, sig, n);
				__atomic_add_fetch(&p2_sign, 1, __ATOMIC_SEQ_CST);
			} else if (rv == CKR_OPERATION_ACTIVE || rv == CKR_OPERATION_NOT_INITIALIZED) {
				__atomic_add_fetch(&p2_busy, 1, __ATOMIC_SEQ_CST);
			} else {
				fail("unlocked C_Sign", id, i, rv);
			}
		} else {
			CK_OBJECT_HANDLE h;
			rv = find_one(shared, CKO_CERTIFICATE, &h);
			if (rv == CKR_OK && h != cert_h && h != 0) fail("unlocked C_FindObjects found another object", id, i, rv);
			else if (rv == CKR_OK || rv == CKR_OPERATION_ACTIVE || rv == CKR_OPERATION_NOT_INITIALIZED) __atomic_add_fetch(&p2_find, 1, __ATOMIC_SEQ_CST);
			else fail("unlocked C_FindObjects", id, i, rv);
		}
	}
	return NULL;
}

static int mixed(const char *path, const char *reader, int threads) {
	if (setup(path, reader)) return 1;
	pthread_t w, th[64];
	pthread_create(&w, NULL, waiter, NULL);
	for (long i = 0; i < threads; i++) pthread_create(&th[i], NULL, mixed_worker, (void *)i);
	for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
	if (errors == 0) printf("phase1 ok sign %d find %d attr %d\n", n_sign, n_find, n_attr);
	for (long i = 0; i < threads; i++) pthread_create(&th[i], NULL, unlocked_worker, (void *)i);
	for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
	printf("phase2 sign %d busy %d find %d\n", p2_sign, p2_busy, p2_find);
	// The shared session may be left with an operation a thread began:
	// C_Finalize ends it along with the blocked wait.
	CK_RV rv = p11->C_Finalize(NULL);
	pthread_join(w, NULL);
	printf("finalize 0x%lx\nwaiter 0x%lx\nevents %d\n", (unsigned long)rv, (unsigned long)waiter_rv, waiter_events);
	return errors != 0 || rv != CKR_OK;
}

// ---- finalize: C_Finalize while threads work ----

static volatile int finalizing;
static int iterations[64], stopped;
static int seen_count[8];
static CK_RV seen_rv[8];

static void seen(CK_RV rv) {
	pthread_mutex_lock(&out_mu);
	int i;
	for (i = 0; i < 8 && seen_count[i] && seen_rv[i] != rv; i++)
		;
	if (i < 8) {
		seen_rv[i] = rv;
		seen_count[i]++;
	}
	pthread_mutex_unlock(&out_mu);
}

// allowed_after_finalize: what a call overlapping C_Finalize may return:
// its result, or that the library is finalised (the session or operation
// it needed went with it). Nothing blames the card, which is still there
// and fine: CKR_DEVICE_ERROR or CKR_DEVICE_REMOVED would make a browser
// shutting down report a card problem.
static int allowed_after_finalize(CK_RV rv) {
	switch (rv) {
	case CKR_OK: case CKR_CRYPTOKI_NOT_INITIALIZED: case CKR_SESSION_HANDLE_INVALID: case CKR_SESSION_CLOSED:
	case CKR_OPERATION_NOT_INITIALIZED: case CKR_USER_NOT_LOGGED_IN: case CKR_OBJECT_HANDLE_INVALID: case CKR_KEY_HANDLE_INVALID:
		return 1;
	}
	return 0;
}

// where[] says which call each thread is in, for the report of a hang.
static const char *volatile where[65];
static const char *op_names[] = {"C_GetTokenInfo", "C_OpenSession", "C_FindObjects", "C_GetAttributeValue", "C_Sign"};

static void on_alarm(int sig) {
	char buf[2048];
	int n = snprintf(buf, sizeof buf, "HANG: main in %s;", where[64] ? where[64] : "?");
	for (int i = 0; i < 64 && n < (int)sizeof buf - 64; i++)
		if (where[i]) n += snprintf(buf + n, sizeof buf - n, " thread %d in %s;", i, where[i]);
	buf[n++] = '\n';
	write(1, buf, n);
	_exit(3);
}

static void *busy_worker(void *arg) {
	long id = (long)arg;
	CK_SESSION_HANDLE s = 0;
	for (int i = 0;; i++) {
		CK_RV rv;
		char msg[64];
		snprintf(msg, sizeof msg, "busy thread %ld message %d", id, i);
		where[id] = op_names[i % 5];
		switch (i % 5) {
		case 0: {
			CK_TOKEN_INFO ti;
			rv = p11->C_GetTokenInfo(slot, &ti);
			break;
		}
		case 1:
			if (s) p11->C_CloseSession(s);
			s = 0;
			rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
			break;
		case 2: {
			CK_OBJECT_HANDLE h;
			rv = find_one(s, CKO_CERTIFICATE, &h);
			break;
		}
		case 3: {
			CK_BYTE buf[8192];
			CK_ULONG len = sizeof buf;
			rv = read_value(shared, cert_h, CKA_VALUE, buf, &len);
			break;
		}
		default: {
			CK_BYTE sig[512];
			CK_ULONG n;
			rv = sign_msg(s, msg, sig, &n, 0);
			if (rv == CKR_OK) print_sig(msg, sig, n);
			break;
		}
		}
		int after = finalizing;
		__atomic_add_fetch(&iterations[id], 1, __ATOMIC_SEQ_CST);
		if (rv != CKR_OK) seen(rv);
		if (rv != CKR_OK && !after) fail("before C_Finalize", id, i, rv);
		if (after && !allowed_after_finalize(rv)) fail("during C_Finalize", id, i, rv);
		where[id] = "the harness";
		if (rv == CKR_CRYPTOKI_NOT_INITIALIZED) {
			__atomic_add_fetch(&stopped, 1, __ATOMIC_SEQ_CST);
			where[id] = 0;
			return NULL;
		}
	}
}

static int finalize_mode(const char *path, const char *reader, int threads) {
	if (setup(path, reader)) return 1;
	signal(SIGALRM, on_alarm);
	alarm(30); // a hang is a failure reported by on_alarm, not a stuck test
	where[64] = "the start";
	pthread_t w, th[64];
	pthread_create(&w, NULL, waiter, NULL);
	for (long i = 0; i < threads; i++) pthread_create(&th[i], NULL, busy_worker, (void *)i);
	// Wait until every thread has done a whole round, signature included.
	for (int ready = 0; !ready;) {
		usleep(20 * 1000);
		ready = 1;
		for (int i = 0; i < threads; i++) ready &= __atomic_load_n(&iterations[i], __ATOMIC_SEQ_CST) >= 6;
	}
	finalizing = 1;
	__sync_synchronize();
	where[64] = "C_Finalize";
	CK_RV rv = p11->C_Finalize(NULL);
	printf("finalize 0x%lx\n", (unsigned long)rv);
	where[64] = "joining the threads";
	for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
	where[64] = "joining the waiter (C_WaitForSlotEvent)";
	pthread_join(w, NULL);
	where[64] = "C_Initialize again";
	printf("stopped %d of %d\nwaiter 0x%lx\n", stopped, threads, (unsigned long)waiter_rv);
	for (int i = 0; i < 8 && seen_count[i]; i++) printf("seen 0x%lx x%d\n", (unsigned long)seen_rv[i], seen_count[i]);
	// The library works again after C_Initialize.
	finalizing = 0;
	CK_BYTE sig[512];
	CK_ULONG n;
	CK_SESSION_HANDLE s;
	CK_RV r2 = initialize();
	if (r2 == CKR_OK) r2 = find_slot(reader, CK_TRUE, &slot);
	if (r2 == CKR_OK) r2 = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (r2 == CKR_OK) r2 = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (r2 == CKR_OK) r2 = sign_msg(s, "after C_Initialize again", sig, &n, 0);
	if (r2 == CKR_OK) print_sig("after C_Initialize again", sig, n);
	printf("reinitialised: sign 0x%lx\n", (unsigned long)r2);
	where[64] = "the last C_Finalize";
	p11->C_Finalize(NULL);
	alarm(0);
	return errors != 0 || rv != CKR_OK || r2 != CKR_OK;
}

// ---- fork ----

static int wait_child(pid_t pid, int seconds) {
	for (int i = 0; i < seconds * 50; i++) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 0x100 + WTERMSIG(status);
		usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0x200; // hung
}

static int fork_mode(const char *self, const char *path, const char *reader) {
	if (setup(path, reader)) return 1;
	CK_BYTE sig[512];
	CK_ULONG n;
	CK_RV rv = sign_msg(shared, "before fork", sig, &n, 0);
	if (rv != CKR_OK) {
		printf("FAIL sign before fork 0x%lx\n", (unsigned long)rv);
		return 1;
	}
	print_sig("before fork", sig, n);
	pthread_t w;
	pthread_create(&w, NULL, waiter, NULL);
	usleep(100 * 1000);
	fflush(stdout);

	// A child that calls the module without exec: refused at once.
	pid_t pid = fork();
	if (pid == 0) {
		alarm(10);
		int bad = 0;
		CK_ULONG cnt = 0;
		CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
		CK_TOKEN_INFO ti;
		if (p11->C_GetSlotList(CK_FALSE, NULL, &cnt) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 1;
		if (p11->C_GetTokenInfo(slot, &ti) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 2;
		if (p11->C_Login(shared, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 4;
		if (p11->C_SignInit(shared, &m, key_h) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 8;
		if (p11->C_Sign(shared, (CK_BYTE_PTR) "x", 1, sig, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 16;
		if (p11->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) bad |= 32;
		_exit(bad);
	}
	printf("child without exec: %d\n", wait_child(pid, 15));

	// A child that execs a program using the module: it works.
	pid = fork();
	if (pid == 0) {
		execl(self, "p11hard", "forkchild", path, reader, (char *)NULL);
		_exit(127);
	}
	printf("child after exec: %d\n", wait_child(pid, 30));

	// The parent is unharmed. The child's card access may have ended the
	// parent's secure-messaging session: then log in again, as told.
	rv = sign_msg(shared, "after fork", sig, &n, 0);
	if (rv == CKR_USER_NOT_LOGGED_IN) {
		printf("relogin after the child used the card\n");
		rv = p11->C_Login(shared, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
		if (rv == CKR_OK) rv = sign_msg(shared, "after fork", sig, &n, 0);
	}
	if (rv == CKR_OK) print_sig("after fork", sig, n);
	printf("parent after fork: sign 0x%lx\n", (unsigned long)rv);
	CK_RV f = p11->C_Finalize(NULL);
	pthread_join(w, NULL);
	printf("waiter 0x%lx\n", (unsigned long)waiter_rv);
	return rv != CKR_OK || f != CKR_OK;
}

static int forkchild(const char *path, const char *reader) {
	alarm(25);
	load(path);
	CK_RV rv = initialize();
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = 0;
	CK_TOKEN_INFO ti;
	if (rv == CKR_OK) rv = find_slot(reader, CK_TRUE, &slot);
	if (rv == CKR_OK) rv = p11->C_GetTokenInfo(slot, &ti);
	if (rv == CKR_OK) rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) rv = find_one(s, CKO_CERTIFICATE, &h); // paired: visible without a PIN
	if (rv == CKR_OK && h == 0) rv = CKR_GENERAL_ERROR;
	if (rv == CKR_OK) rv = p11->C_Finalize(NULL);
	if (rv != CKR_OK) printf("FAIL forkchild 0x%lx\n", (unsigned long)rv);
	return rv != CKR_OK;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "repl")) return repl(argv[2]);
	if (argc >= 7 && !strcmp(argv[1], "mixed")) {
		pin = argv[4];
		count = atoi(argv[6]);
		return mixed(argv[2], argv[3], atoi(argv[5]));
	}
	if (argc >= 6 && !strcmp(argv[1], "finalize")) {
		pin = argv[4];
		return finalize_mode(argv[2], argv[3], atoi(argv[5]));
	}
	if (argc >= 5 && !strcmp(argv[1], "fork")) {
		pin = argv[4];
		char self[4096];
		ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
		if (k <= 0) return 1;
		self[k] = 0;
		return fork_mode(self, argv[2], argv[3]);
	}
	if (argc >= 4 && !strcmp(argv[1], "forkchild")) return forkchild(argv[2], argv[3]);
	fprintf(stderr, "usage: p11hard repl MODULE | mixed MODULE READER PIN THREADS COUNT | finalize MODULE READER PIN THREADS | fork MODULE READER PIN\n");
	return 2;
}
`
