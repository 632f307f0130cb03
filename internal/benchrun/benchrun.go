//go:build linux

package benchrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ciedesktop/cie-desktop/pcsc"
)

// Facts of the Debian vsmartcard-vpcd package (/etc/reader.conf.d/vpcd),
// the same as internal/testbench's: one reader entry with two slots
// listening on TCP ports 35963 and 35964.
const (
	// VPCDPort is the TCP port of slot 0; slot n listens on VPCDPort+n.
	VPCDPort = 35963
	// Slots is the number of vpcd readers.
	Slots = 2
	// readerPrefix is the FRIENDLYNAME of the vpcd reader entry.
	readerPrefix = "Virtual PCD "
	// pcscdSocket is where pcscd 1.9.9 puts its socket.
	pcscdSocket = "/run/pcscd/pcscd.comm"
)

// Bounds of the waits, as generous as internal/testbench's for a busy
// 2-core machine.
const (
	readyTimeout   = 10 * time.Second
	presentTimeout = 15 * time.Second
	lockTimeout    = 60 * time.Second
	slotTimeout    = 3 * time.Minute
)

// Options configures Start.
type Options struct {
	// Sim is the cie-sim executable.
	Sim string
	// State is the card state directory to copy (the module's
	// testdata/sim); the card works on a private copy.
	State string
	// SimArgs are more cie-sim flags, e.g. "--family", "gemalto".
	SimArgs []string
	// WorkDir holds the card's state copy, its control socket and the logs
	// of the processes started here. It must exist.
	WorkDir string
}

// Bench is pcscd with the vpcd readers and one cie-sim card in a reader
// that this process holds.
type Bench struct {
	pc      *pcsc.Context
	users   *os.File // shared lock on pcscd.lock while pcscd is in use
	slot    int
	slotF   *os.File // exclusive lock on slot-N.lock
	reader  string
	control string
	sim     *exec.Cmd
	simDone chan struct{}
	simLog  string
	pcscLog string
}

// Start connects to pcscd, starting it (as root) when it is not running,
// takes a free vpcd reader and plugs a cie-sim card into it. The caller
// must call Close, which also stops a pcscd started here when no other
// process coordinated by the lock files still uses it.
func Start(ctx context.Context, opts Options) (b *Bench, err error) {
	b = &Bench{}
	defer func() {
		if err != nil {
			b.Close()
			b = nil
		}
	}()
	if b.users, err = openLock("pcscd.lock"); err != nil {
		return nil, err
	}
	if !lockWithin(ctx, b.users, syscall.LOCK_SH, lockTimeout) {
		return nil, fmt.Errorf("benchrun: another process kept pcscd locked for %v while stopping it", lockTimeout)
	}
	if err := b.connect(ctx, opts.WorkDir); err != nil {
		return nil, err
	}
	readers, err := b.findReaders(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.acquireSlot(ctx, readers); err != nil {
		return nil, err
	}
	if err := b.startSim(ctx, opts); err != nil {
		return nil, err
	}
	return b, nil
}

// connect establishes a PC/SC context, starting pcscd first when it is
// not running; start.lock keeps two processes from starting it together.
func (b *Bench) connect(ctx context.Context, workDir string) error {
	starting, err := openLock("start.lock")
	if err != nil {
		return err
	}
	defer starting.Close()
	if !lockWithin(ctx, starting, syscall.LOCK_EX, lockTimeout) {
		return fmt.Errorf("benchrun: another process kept starting pcscd for %v", lockTimeout)
	}
	pc, err := pcsc.Establish()
	if err == nil {
		b.pc = pc
		return nil
	}
	if !errors.Is(err, pcsc.ErrNoService) {
		return fmt.Errorf("benchrun: connecting to pcscd: %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("benchrun: pcscd is not running and only root can start it: " +
			"run as root, or start it first (sudo systemctl start pcscd.socket)")
	}
	if err := b.startPCSCD(ctx, workDir); err != nil {
		return err
	}
	ok := waitFor(ctx, readyTimeout, func() bool {
		b.pc, err = pcsc.Establish()
		return err == nil
	})
	if !ok {
		return fmt.Errorf("benchrun: connecting to the pcscd just started: %v; its log: %s", err, b.pcscLog)
	}
	return nil
}

// startPCSCD starts pcscd in the foreground, records its PID for the last
// user to stop it, and waits until its socket and the vpcd ports are up.
func (b *Bench) startPCSCD(ctx context.Context, workDir string) error {
	bin, err := exec.LookPath("pcscd")
	if err != nil {
		bin = "/usr/sbin/pcscd" // root's PATH without sbin
		if _, serr := os.Stat(bin); serr != nil {
			return fmt.Errorf("benchrun: pcscd is not installed (apt-get install pcscd vsmartcard-vpcd): %w", err)
		}
	}
	b.pcscLog = filepath.Join(workDir, "pcscd.log")
	logf, err := os.Create(b.pcscLog)
	if err != nil {
		return fmt.Errorf("benchrun: creating pcscd's log: %w", err)
	}
	cmd := exec.Command(bin, "--foreground")
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("benchrun: starting pcscd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	dir, err := lockDir()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "pcscd.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o666); err != nil {
		return fmt.Errorf("benchrun: writing pcscd's PID: %w", err)
	}
	if err := startWatchdog(dir); err != nil {
		return err
	}
	gone := false
	ready := waitFor(ctx, readyTimeout, func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		fi, err := os.Stat(pcscdSocket)
		return err == nil && fi.Mode()&os.ModeSocket != 0 && tcpListening(VPCDPort) && tcpListening(VPCDPort+Slots-1)
	})
	switch {
	case gone:
		return fmt.Errorf("benchrun: pcscd exited at start (%v); its log: %s", cmd.ProcessState, b.pcscLog)
	case !ready:
		return fmt.Errorf("benchrun: pcscd not ready after %v (socket %s, TCP ports %d-%d); its log: %s",
			readyTimeout, pcscdSocket, VPCDPort, VPCDPort+Slots-1, b.pcscLog)
	}
	return nil
}

// findReaders waits until pcscd lists the vpcd readers and returns their
// names by slot.
func (b *Bench) findReaders(ctx context.Context) ([Slots]string, error) {
	var readers [Slots]string
	var names []string
	var err error
	found := waitFor(ctx, readyTimeout, func() bool {
		if names, err = b.pc.Readers(); err != nil {
			return false
		}
		for slot := range Slots {
			readers[slot] = ""
			suffix := fmt.Sprintf(" %02X", slot)
			for _, n := range names {
				if strings.HasPrefix(n, readerPrefix) && strings.HasSuffix(n, suffix) {
					readers[slot] = n
				}
			}
			if readers[slot] == "" {
				return false
			}
		}
		return true
	})
	if !found {
		return readers, fmt.Errorf("benchrun: pcscd does not list the vpcd readers %q… (readers %q, err %v); is vsmartcard-vpcd installed?",
			readerPrefix, names, err)
	}
	for slot := range Slots {
		if !tcpListening(VPCDPort + slot) {
			return readers, fmt.Errorf("benchrun: pcscd lists %q but nothing listens on TCP port %d", readers[slot], VPCDPort+slot)
		}
	}
	return readers, nil
}

// acquireSlot locks a vpcd reader that no other process holds and that
// pcscd reports empty, waiting while tests hold both.
func (b *Bench) acquireSlot(ctx context.Context, readers [Slots]string) error {
	deadline := time.Now().Add(slotTimeout)
	for {
		for slot := range Slots {
			f, err := openLock(fmt.Sprintf("slot-%d.lock", slot))
			if err != nil {
				return err
			}
			if !tryLock(f, syscall.LOCK_EX) {
				f.Close()
				continue
			}
			if st, err := b.pc.Status(ctx, readers[slot]); err == nil && !st.Present {
				b.slot, b.slotF, b.reader = slot, f, readers[slot]
				return nil
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("benchrun: no free virtual reader within %v: others hold %q and %q", slotTimeout, readers[0], readers[1])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startSim runs cie-sim on the reader and waits until pcscd sees the card.
func (b *Bench) startSim(ctx context.Context, opts Options) error {
	state := filepath.Join(opts.WorkDir, "card-state")
	if err := copyDir(opts.State, state); err != nil {
		return err
	}
	b.control = filepath.Join(opts.WorkDir, "card.sock")
	b.simLog = filepath.Join(opts.WorkDir, "cie-sim.log")
	logf, err := os.Create(b.simLog)
	if err != nil {
		return fmt.Errorf("benchrun: creating cie-sim's log: %w", err)
	}
	args := append([]string{"--vpcd", fmt.Sprintf("127.0.0.1:%d", VPCDPort+b.slot), "--control", b.control, "--state", state}, opts.SimArgs...)
	b.sim = exec.Command(opts.Sim, args...)
	b.sim.Stdout, b.sim.Stderr = logf, logf
	b.sim.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no card left behind by a crash
	err = b.sim.Start()
	logf.Close()
	if err != nil {
		b.sim = nil
		return fmt.Errorf("benchrun: starting %s: %w", opts.Sim, err)
	}
	b.simDone = make(chan struct{})
	go func() { _ = b.sim.Wait(); close(b.simDone) }()
	if err := b.WaitPresent(ctx, true); err != nil {
		return fmt.Errorf("%w; cie-sim's log: %s", err, b.simLog)
	}
	return nil
}

// Reader returns the PC/SC name of the card's reader.
func (b *Bench) Reader() string { return b.reader }

// Control sends one line to cie-sim's control socket and returns the
// answer line; an answer starting with "error" is returned as an error.
func (b *Bench) Control(line string) (string, error) {
	conn, err := net.DialTimeout("unix", b.control, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("benchrun: connecting to the card's control socket: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return "", fmt.Errorf("benchrun: sending %q to the card: %w", line, err)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("benchrun: reading the card's answer to %q: %w", line, err)
	}
	answer = strings.TrimSpace(answer)
	if strings.HasPrefix(answer, "error") {
		return answer, fmt.Errorf("benchrun: the card refused %q: %s", line, answer)
	}
	return answer, nil
}

// Stats is the card's own count since the last ResetStats.
type Stats struct {
	APDUs    int // command APDUs the card answered
	ToCard   int // command bytes, host to card
	FromCard int // response bytes, card to host
}

// ParseStats reads cie-sim's answer to "stats": "apdus=N sent=N
// received=N", where sent counts the card's bytes to the host.
func ParseStats(answer string) (Stats, error) {
	var s Stats
	if _, err := fmt.Sscanf(answer, "apdus=%d sent=%d received=%d", &s.APDUs, &s.FromCard, &s.ToCard); err != nil {
		return Stats{}, fmt.Errorf("benchrun: parsing the card's statistics %q: %w", answer, err)
	}
	return s, nil
}

// Stats returns the card's counters.
func (b *Bench) Stats() (Stats, error) {
	answer, err := b.Control("stats")
	if err != nil {
		return Stats{}, err
	}
	return ParseStats(answer)
}

// ResetStats sets the card's counters to zero.
func (b *Bench) ResetStats() error {
	_, err := b.Control("stats reset")
	return err
}

// SetLatency sets the delay the card adds to every APDU.
func (b *Bench) SetLatency(d time.Duration) error {
	_, err := b.Control("latency " + d.String())
	return err
}

// Remove takes the card out of the reader and waits until pcscd sees the
// reader empty; Insert puts it back and waits until pcscd sees it.
func (b *Bench) Remove(ctx context.Context) error {
	if _, err := b.Control("remove"); err != nil {
		return err
	}
	return b.WaitPresent(ctx, false)
}

// Insert puts the card back after Remove.
func (b *Bench) Insert(ctx context.Context) error {
	if _, err := b.Control("insert"); err != nil {
		return err
	}
	return b.WaitPresent(ctx, true)
}

// WaitPresent waits until pcscd reports the card present (or absent). It
// fails at once if cie-sim has exited.
func (b *Bench) WaitPresent(ctx context.Context, present bool) error {
	return b.waitPresence(ctx, present, b.simDone)
}

// waitPresence waits until pcscd reports the card present (or absent),
// giving up when exited (if not nil) is closed.
func (b *Bench) waitPresence(ctx context.Context, present bool, exited <-chan struct{}) error {
	var last error
	ok := waitFor(ctx, presentTimeout, func() bool {
		select {
		case <-exited: // a nil channel never is
			last = errors.New("cie-sim exited")
			return true
		default:
		}
		st, err := b.pc.Status(ctx, b.reader)
		last = err
		return err == nil && st.Present == present
	})
	if !ok || last != nil {
		state := map[bool]string{true: "the card present", false: "the reader empty"}[present]
		return fmt.Errorf("benchrun: pcscd did not report %s in %q within %v (%v)", state, b.reader, presentTimeout, last)
	}
	return nil
}

// Close removes the card, frees the reader and stops a pcscd started by
// this program or a test when no other process uses it any more.
func (b *Bench) Close() error {
	var errs []error
	if b.sim != nil {
		_ = b.sim.Process.Kill()
		select {
		case <-b.simDone:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("benchrun: cie-sim (pid %d) did not exit after SIGKILL", b.sim.Process.Pid))
		}
		if b.pc != nil {
			// The reader is free for others once pcscd has seen it empty.
			if err := b.waitPresence(context.Background(), false, nil); err != nil {
				errs = append(errs, err)
			}
		}
		b.sim = nil
	}
	if b.slotF != nil {
		b.slotF.Close()
		b.slotF = nil
	}
	if b.pc != nil {
		_ = b.pc.Release()
		b.pc = nil
	}
	if b.users != nil {
		if err := stopUnusedPCSCD(b.users); err != nil {
			errs = append(errs, err)
		}
		b.users.Close()
		b.users = nil
	}
	return errors.Join(errs...)
}

// stopUnusedPCSCD stops the pcscd named in pcscd.pid (started by this
// program or a test) when users can be locked exclusively, that is when
// no other coordinated process uses it.
func stopUnusedPCSCD(users *os.File) error {
	if !tryLock(users, syscall.LOCK_EX) {
		return nil // another process still uses pcscd; the last one stops it
	}
	dir, err := lockDir()
	if err != nil {
		return err
	}
	pidFile := filepath.Join(dir, "pcscd.pid")
	pid := readPID(pidFile)
	if pid == 0 {
		return nil // started outside the coordination (systemd, a user): leave it
	}
	defer os.Remove(pidFile)
	if processName(pid) != "pcscd" {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitFor(context.Background(), 10*time.Second, func() bool { return processName(pid) == "" }) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return fmt.Errorf("benchrun: pcscd (pid %d) ignored SIGTERM for 10 s and was killed", pid)
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("benchrun: reading the card state template: %w", err)
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("benchrun: creating the card state directory: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return fmt.Errorf("benchrun: copying the card state: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return fmt.Errorf("benchrun: copying the card state: %w", err)
		}
	}
	return nil
}
