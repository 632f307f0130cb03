// Command cie-sim is the virtual CIE 3.0: it connects a simulated card
// (internal/ciesim) to vsmartcard's vpcd, so that pcscd shows it in the
// "Virtual PCD" reader, and optionally listens on a unix socket for test
// controls (statistics, removal, faults). Run with -h for the flags.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cie-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		family   = fs.String("family", ciesim.DefaultFamily, "chip family (see --list-families)")
		atrHex   = fs.String("atr", "", "override the ATR (hex), keeping the family's behaviour")
		addr     = fs.String("vpcd", ciesim.DefaultVPCDAddr, "vpcd address HOST:PORT")
		stateDir = fs.String("state", "", "card state directory (default <user cache dir>/cie-sim; created on first run)")
		pin      = fs.String("pin", ciesim.DefaultPIN, "initial PIN, 8 digits (tests only)")
		puk      = fs.String("puk", ciesim.DefaultPUK, "initial PUK, 8 digits (tests only)")
		given    = fs.String("given-name", "", "holder given name (default: the state's)")
		surname  = fs.String("surname", "", "holder surname (default: the state's)")
		fiscal   = fs.String("fiscal-code", "", "holder codice fiscale (default: the state's)")
		cardNum  = fs.String("card-number", "", "document number, 9 characters (default: the state's)")
		latency  = fs.Duration("latency", 0, "delay added to every APDU, e.g. 20ms")
		control  = fs.String("control", "", "unix socket for the control line protocol")
		exportCA = fs.String("export-ca", "", "write the test CA certificate (PEM) to FILE and exit")
		list     = fs.Bool("list-families", false, "list the chip families and exit")
		verbose  = fs.Bool("v", false, "log APDU headers and status words (never data) to stderr")
		showVer  = fs.Bool("version", false, "print the version and exit")
		send     = fs.String("send", "", "send one control LINE to the running simulator at --control, print its answer and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "cie-sim: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVer {
		fmt.Fprintln(stdout, "cie-sim", version)
		return 0
	}
	if *send != "" {
		if *control == "" {
			fmt.Fprintln(stderr, "cie-sim: --send needs --control PATH of the running simulator")
			return 2
		}
		answer, err := sendControl(*control, *send)
		if err != nil {
			fmt.Fprintln(stderr, "cie-sim:", err)
			return 1
		}
		fmt.Fprintln(stdout, answer)
		if strings.HasPrefix(answer, "error") {
			return 1
		}
		return 0
	}
	if *list {
		for _, f := range ciesim.Families() {
			fmt.Fprintf(stdout, "%-13s %-20s %s\n", f.ID, f.Name, strings.ToUpper(hex.EncodeToString(f.ATR)))
		}
		return 0
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "cie-sim:", err)
		return 1
	}
	dir := *stateDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fail(fmt.Errorf("finding the state directory: %w", err))
		}
		dir = filepath.Join(cache, "cie-sim")
	}
	st, err := ciesim.LoadOrCreateState(dir)
	if err != nil {
		return fail(err)
	}
	if *exportCA != "" {
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.CACert.Raw})
		if err := os.WriteFile(*exportCA, b, 0o644); err != nil {
			return fail(fmt.Errorf("exporting the CA certificate: %w", err))
		}
		return 0
	}
	var atr []byte
	if *atrHex != "" {
		if atr, err = hex.DecodeString(strings.ReplaceAll(*atrHex, " ", "")); err != nil || len(atr) < 2 || len(atr) > 33 {
			return fail(fmt.Errorf("--atr %q: want 2 to 33 bytes of hex", *atrHex))
		}
	}
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	card, err := ciesim.New(ciesim.Config{
		Family: *family, ATR: atr, State: st,
		PIN: []byte(*pin), PUK: []byte(*puk),
		Holder:  ciesim.Holder{GivenName: *given, Surname: *surname, FiscalCode: *fiscal, CardNumber: *cardNum},
		Latency: *latency, Logger: logger,
	})
	if err != nil {
		return fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	v := ciesim.NewVPCD(card, *addr, logger)
	done := make(chan error, 1)
	if *control != "" {
		os.Remove(*control) // a stale socket of an earlier run
		ln, err := net.Listen("unix", *control)
		if err != nil {
			return fail(fmt.Errorf("listening on the control socket: %w", err))
		}
		defer os.Remove(*control)
		ctl := &ciesim.Control{Card: card, VPCD: v}
		go func() { done <- ctl.Serve(ctx, ln, stop) }()
	}
	fmt.Fprintf(stderr, "cie-sim %s: %s card, vpcd %s, state %s\n", version, card.Family(), *addr, dir)
	if err := v.Run(ctx); err != nil {
		return fail(err)
	}
	if *control != "" {
		select {
		case err := <-done:
			if err != nil {
				return fail(err)
			}
		case <-time.After(2 * time.Second):
		}
	}
	return 0
}

// sendControl sends one line to a running simulator's control socket and
// returns its one-line answer.
func sendControl(path, line string) (string, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("connecting to the control socket: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, strings.TrimSpace(line)+"\n"); err != nil {
		return "", fmt.Errorf("sending %q: %w", line, err)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading the answer to %q: %w", line, err)
	}
	return strings.TrimSpace(answer), nil
}
