//go:build linux

package pcsc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// noServiceEnv makes the test binary, run as a child with
// PCSCLITE_CSOCK_NAME pointing nowhere, report what Establish returns.
// libpcsclite reads that variable once per process, hence the child.
const noServiceEnv = "CIE_PCSC_TEST_NOSERVICE"

func TestMain(m *testing.M) {
	if os.Getenv(noServiceEnv) == "1" {
		pc, err := pcsc.Establish()
		if err == nil {
			pc.Release()
		}
		fmt.Printf("is-no-service=%v err=%v\n", errors.Is(err, pcsc.ErrNoService), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var selectMF = []byte{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00}

func establish(t *testing.T) *pcsc.Context {
	t.Helper()
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Release() })
	return pc
}

func connect(t *testing.T, pc *pcsc.Context, reader string) *pcsc.Card {
	t.Helper()
	conn, err := pc.Connect(context.Background(), reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// stat reads one counter ("apdus", "resets", …) from the fake card.
func stat(t *testing.T, c *testbench.Card, name string) int {
	t.Helper()
	line, err := c.Control("stats")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok && k == name {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("stats %q lack %s", line, name)
	return 0
}

func TestReadersListsBothVirtualReaders(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	names, err := establish(t).Readers()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Virtual PCD 00 00", "Virtual PCD 00 01"} {
		if !slices.Contains(names, want) {
			t.Errorf("Readers() = %q, lacks %q", names, want)
		}
	}
	if b.ReaderName(0) != "Virtual PCD 00 00" {
		t.Errorf("bench reader 0 is %q", b.ReaderName(0))
	}
}

func TestStatusShowsCardAndATR(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	c := b.StartFakeCard(t, testbench.FakeCard{})
	pc := establish(t)
	ctx := context.Background()

	st, err := pc.Status(ctx, c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != c.Reader() || !st.Present || st.Mute || !bytes.Equal(st.ATR, testbench.GemaltoATR) {
		t.Errorf("Status = %+v, want present with ATR % X", st, testbench.GemaltoATR)
	}
	conn := connect(t, pc, c.Reader())
	if st, err := pc.Status(ctx, c.Reader()); err != nil || !st.InUse {
		t.Errorf("Status while connected = %+v, %v; want InUse", st, err)
	}
	conn.Close()

	_, err = pc.Status(ctx, "No Such Reader 00 00")
	if !errors.Is(err, scard.ErrUnknownReader) || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Status(unknown reader) = %v", err)
	}
}

func TestConnectTransmit(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	// The card answers the command's bytes reversed, so that the test sees
	// both directions pass through unchanged.
	reverse := func(cmd []byte) []byte {
		r := bytes.Clone(cmd)
		slices.Reverse(r)
		return append(r, 0x90, 0x00)
	}
	c := b.StartFakeCard(t, testbench.FakeCard{Handle: reverse})
	pc := establish(t)
	conn := connect(t, pc, c.Reader())
	ctx := context.Background()

	if conn.Reader() != c.Reader() {
		t.Errorf("Reader() = %q, want %q", conn.Reader(), c.Reader())
	}
	if atr, err := conn.ATR(); err != nil || !bytes.Equal(atr, testbench.GemaltoATR) {
		t.Errorf("ATR() = % X, %v", atr, err)
	}
	big := make([]byte, 4+3+1000) // an extended-length command
	for i := range big {
		big[i] = byte(i)
	}
	for _, cmd := range [][]byte{selectMF, big} {
		rsp, err := conn.Transmit(ctx, cmd)
		if err != nil {
			t.Fatalf("Transmit(%d bytes): %v", len(cmd), err)
		}
		if want := reverse(cmd); !bytes.Equal(rsp, want) {
			t.Errorf("Transmit(%d bytes) = % X, want % X", len(cmd), rsp, want)
		}
		if cap(rsp) >= 1<<16 {
			t.Errorf("Transmit returned a slice of the library's %d-byte buffer", cap(rsp))
		}
	}

	// apdu.Exchange drives it as an apdu.Transport.
	var tr apdu.Transport = conn
	var _ apdu.Transactor = conn
	r, err := apdu.Exchange(ctx, tr, apdu.Command{CLA: 0x00, INS: 0x84, Ne: 8})
	if err != nil || r.SW != apdu.SWOK || !bytes.Equal(r.Data, []byte{0x08, 0x00, 0x00, 0x84, 0x00}) {
		t.Errorf("Exchange = %+v, %v", r, err)
	}

	if err := conn.BeginTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Transmit(ctx, selectMF); err != nil {
		t.Errorf("Transmit in a transaction: %v", err)
	}
	if err := conn.EndTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, c, "apdus"); n != 4 {
		t.Errorf("the card answered %d APDUs, want 4", n)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := conn.Transmit(cancelled, selectMF); !errors.Is(err, context.Canceled) {
		t.Errorf("Transmit with a cancelled context = %v", err)
	}
	if _, err := conn.Transmit(ctx, nil); err == nil {
		t.Error("Transmit(nil) succeeded")
	}
	if n := stat(t, c, "apdus"); n != 4 {
		t.Errorf("refused commands reached the card: %d APDUs", n)
	}

	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := conn.Transmit(ctx, selectMF); !errors.Is(err, pcsc.ErrClosed) {
		t.Errorf("Transmit after Close = %v", err)
	}
	if n := stat(t, c, "resets"); n != 0 {
		t.Errorf("Close reset the card %d times; it must leave it", n)
	}
}

// resetFromOtherClient resets the card the way another application does:
// a second context connects and disconnects with SCARD_RESET_CARD.
func resetFromOtherClient(t *testing.T, reader string) {
	t.Helper()
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()
	card, err := sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	if err := card.Disconnect(scard.ResetCard); err != nil {
		t.Fatal(err)
	}
}

func TestResetByOtherClient(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	c := b.StartFakeCard(t, testbench.FakeCard{})
	conn := connect(t, establish(t), c.Reader())
	ctx := context.Background()

	if _, err := conn.Transmit(ctx, selectMF); err != nil {
		t.Fatal(err)
	}
	resetFromOtherClient(t, c.Reader())
	if n := stat(t, c, "resets"); n != 1 {
		t.Fatalf("the card saw %d resets, want 1", n)
	}

	_, err := conn.Transmit(ctx, selectMF)
	if !errors.Is(err, apdu.ErrCardReset) || !strings.Contains(err.Error(), "was not executed") {
		t.Fatalf("Transmit after a reset = %v, want apdu.ErrCardReset", err)
	}
	if n := stat(t, c, "apdus"); n != 1 {
		t.Errorf("the command was sent after the reset: the card answered %d APDUs, want 1", n)
	}
	if rsp, err := conn.Transmit(ctx, selectMF); err != nil || !bytes.Equal(rsp, []byte{0x90, 0x00}) {
		t.Fatalf("Transmit after reconnecting = % X, %v", rsp, err)
	}
	if n := stat(t, c, "apdus"); n != 2 {
		t.Errorf("the card answered %d APDUs, want 2", n)
	}
	if n := stat(t, c, "resets"); n != 1 {
		t.Errorf("reconnecting reset the card again: %d resets", n)
	}

	// BeginTransaction reports a reset the same way.
	resetFromOtherClient(t, c.Reader())
	if err := conn.BeginTransaction(ctx); !errors.Is(err, apdu.ErrCardReset) {
		t.Fatalf("BeginTransaction after a reset = %v, want apdu.ErrCardReset", err)
	}
	if err := conn.BeginTransaction(ctx); err != nil {
		t.Fatalf("BeginTransaction after reconnecting = %v", err)
	}
	if err := conn.EndTransaction(ctx); err != nil {
		t.Fatal(err)
	}

	// ATR is harmless to read again: it recovers on its own.
	resetFromOtherClient(t, c.Reader())
	if atr, err := conn.ATR(); err != nil || !bytes.Equal(atr, testbench.GemaltoATR) {
		t.Errorf("ATR after a reset = % X, %v", atr, err)
	}
	if _, err := conn.Transmit(ctx, selectMF); err != nil {
		t.Errorf("Transmit after ATR recovered from the reset = %v", err)
	}

	// Reconnect(reset) resets the card itself.
	if err := conn.Reconnect(ctx, true); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, c, "resets"); n != 4 {
		t.Errorf("after Reconnect(reset) the card saw %d resets, want 4", n)
	}
	if _, err := conn.Transmit(ctx, selectMF); err != nil {
		t.Errorf("Transmit after Reconnect = %v", err)
	}
}

func TestCardRemoved(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	c := b.StartFakeCard(t, testbench.FakeCard{})
	pc := establish(t)
	conn := connect(t, pc, c.Reader())
	ctx := context.Background()
	if _, err := conn.Transmit(ctx, selectMF); err != nil {
		t.Fatal(err)
	}

	c.Stop(t) // closes the card's connection and waits until pcscd sees the reader empty

	_, err := conn.Transmit(ctx, selectMF)
	if !errors.Is(err, apdu.ErrCardRemoved) && !errors.Is(err, apdu.ErrNoCard) {
		t.Errorf("Transmit after removal = %v, want apdu.ErrCardRemoved or apdu.ErrNoCard", err)
	}
	_, err = pc.Connect(ctx, c.Reader())
	if !errors.Is(err, apdu.ErrNoCard) || !strings.Contains(err.Error(), "no card in the reader") {
		t.Errorf("Connect to the empty reader = %v, want apdu.ErrNoCard", err)
	}
	st, err := pc.Status(ctx, c.Reader())
	if err != nil || st.Present || st.ATR != nil {
		t.Errorf("Status after removal = %+v, %v", st, err)
	}
}

func TestWaitForChangeSeesInsertionAndRemoval(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	pc := establish(t) // used by the watching goroutine only
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	known, err := pc.WaitForChange(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(known) < 2 {
		t.Fatalf("WaitForChange(nil) = %v, want both readers", known)
	}

	type result struct {
		st  []pcsc.ReaderStatus
		err error
	}
	changes := make(chan result, 16)
	go func() {
		defer close(changes)
		for {
			st, err := pc.WaitForChange(ctx, known)
			changes <- result{st, err}
			if err != nil {
				return
			}
			known = st
		}
	}()
	// A card with an ATR no other test uses: other tests insert and remove
	// their cards in the same readers while this one waits for a free one.
	atr := []byte{0x3B, 0x88, 0x80, 0x01, 'W', 'A', 'I', 'T', 'T', 'E', 'S', 'T', 0x00}
	// next waits for a change that shows reader with the wanted presence;
	// changes of other tests' cards are skipped.
	next := func(reader string, present bool) {
		t.Helper()
		for r := range changes {
			if r.err != nil {
				t.Fatalf("WaitForChange: %v", r.err)
			}
			i := slices.IndexFunc(r.st, func(s pcsc.ReaderStatus) bool { return s.Name == reader })
			if i >= 0 && r.st[i].Present == present && (!present || bytes.Equal(r.st[i].ATR, atr)) {
				return
			}
		}
		t.Fatal("watcher ended")
	}

	c := b.StartFakeCard(t, testbench.FakeCard{ATR: atr})
	next(c.Reader(), true)
	c.Stop(t)
	next(c.Reader(), false)

	start := time.Now()
	cancel()
	for r := range changes {
		if r.err != nil {
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("WaitForChange after cancel = %v", r.err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("WaitForChange took %v to honour the cancel", d)
			}
		}
	}
}

func TestWaitForChangeHonoursDeadline(t *testing.T) {
	t.Parallel()
	testbench.Start(t, testbench.Options{})
	pc := establish(t)
	known, err := pc.WaitForChange(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	for { // other test processes may plug cards in meanwhile: wait again
		known, err = pc.WaitForChange(ctx, known)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForChange = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("a 300 ms deadline took %v", d)
	}
	// The context stays usable after a cancelled wait.
	if _, err := pc.Readers(); err != nil {
		t.Errorf("Readers after a cancelled wait: %v", err)
	}
}

func TestWaitForChangeIgnoresOtherFlags(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	c := b.StartFakeCard(t, testbench.FakeCard{})
	pc := establish(t)
	known, err := pc.WaitForChange(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another application connects and exchanges an APDU after we took
	// known: the reader's "in use" flag now differs from known, which is no
	// change of readers or cards. (pcsc-lite 1.9.9 does not report it as a
	// change at all; WinSCard does, and WaitForChange filters it.)
	other := establish(t)
	conn := connect(t, other, c.Reader())
	if _, err := conn.Transmit(context.Background(), selectMF); err != nil {
		t.Fatal(err)
	}
	if st, err := pc.Status(context.Background(), c.Reader()); err != nil || !st.InUse {
		t.Fatalf("Status = %+v, %v; want InUse", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	for {
		cur, err := pc.WaitForChange(ctx, known)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitForChange = %v", err)
			}
			break
		}
		// A return is only right if some other reader changed: another
		// test, running in parallel, plugging a reader in or out, or
		// inserting or removing a card (a quick remove and insert shows
		// only in the event counter). This test's reader must not change.
		byName := map[string]pcsc.ReaderStatus{}
		for _, k := range known {
			byName[k.Name] = k
		}
		changed := func(a, b pcsc.ReaderStatus) bool {
			return a.Present != b.Present || !bytes.Equal(a.ATR, b.ATR) || pcsc.EventCount(a) != pcsc.EventCount(b)
		}
		otherChanged := len(cur) != len(known)
		for _, s := range cur {
			k, ok := byName[s.Name]
			switch {
			case s.Name == c.Reader() && (!ok || changed(k, s)):
				t.Fatalf("WaitForChange reports a change of this test's reader, where only its in-use flag changed: %v (state %#x) → %v (state %#x)",
					k, pcsc.RawState(k), s, pcsc.RawState(s))
			case !ok || changed(k, s):
				otherChanged = true
			}
		}
		if !otherChanged {
			raw := func(l []pcsc.ReaderStatus) (out []string) {
				for _, s := range l {
					out = append(out, fmt.Sprintf("%s state %#x", s, pcsc.RawState(s)))
				}
				return out
			}
			t.Fatalf("WaitForChange returned without a card or reader change: %q → %q", raw(known), raw(cur))
		}
		known = cur
	}
	if n := stat(t, c, "apdus"); n != 1 {
		t.Errorf("the other application sent %d APDUs, want 1", n)
	}
	// An empty, non-nil known means "no readers": it returns at once.
	cur, err := pc.WaitForChange(context.Background(), []pcsc.ReaderStatus{})
	if err != nil || len(cur) < 2 {
		t.Errorf("WaitForChange(no readers known) = %v, %v", cur, err)
	}
}

func TestWaitForCard(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	c := b.StartFakeCard(t, testbench.FakeCard{})
	pc := establish(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.WaitForCard(ctx, c.Reader()); err != nil {
		t.Errorf("WaitForCard with a card present = %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := pc.WaitForCard(short, "Reader Not Plugged In"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForCard on an absent reader = %v, want context.DeadlineExceeded", err)
	}
}

func TestReleasedContext(t *testing.T) {
	t.Parallel()
	testbench.Start(t, testbench.Options{})
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Release(); err != nil {
		t.Fatal(err)
	}
	if err := pc.Release(); err != nil {
		t.Errorf("second Release = %v", err)
	}
	if _, err := pc.Readers(); !errors.Is(err, pcsc.ErrClosed) {
		t.Errorf("Readers after Release = %v", err)
	}
	if _, err := pc.Connect(context.Background(), "Virtual PCD 00 00"); !errors.Is(err, pcsc.ErrClosed) {
		t.Errorf("Connect after Release = %v", err)
	}
}

func TestNoService(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), noServiceEnv+"=1", "PCSCLITE_CSOCK_NAME="+t.TempDir()+"/no-pcscd.comm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "is-no-service=true") ||
		!strings.Contains(string(out), "the smart card service (pcscd) is not running") {
		t.Errorf("Establish without pcscd: %s", out)
	}
}

func TestRoundTripLatency(t *testing.T) {
	// Not parallel: it runs before the parallel tests, on a quiet bench.
	b := testbench.Start(t, testbench.Options{})
	c := b.StartFakeCard(t, testbench.FakeCard{})
	conn := connect(t, establish(t), c.Reader())
	ctx := context.Background()
	const n = 200
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		rsp, err := conn.Transmit(ctx, selectMF)
		d[i] = time.Since(start)
		if err != nil || !bytes.Equal(rsp, []byte{0x90, 0x00}) {
			t.Fatalf("APDU %d: % X, %v", i, rsp, err)
		}
	}
	if got := stat(t, c, "apdus"); got != n {
		t.Errorf("the card answered %d APDUs, want %d", got, n)
	}
	slices.Sort(d)
	t.Logf("%d APDUs through pcscd+vpcd: median %v, p90 %v, max %v", n, d[n/2], d[n*9/10], d[n-1])
}
