package cli

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// Env is what the command needs from its process: standard streams and the
// way to read a secret from the terminal.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ReadPassword reads one line without echo from the terminal; nil when
	// standard input is not a terminal.
	ReadPassword func() ([]byte, error)
	Version      string
}

const usageText = `Usage: cie [global flags] <command> [flags]

Commands:
  readers            list the smart card readers and whether a card is on them
  status             show the card: chip family, numbers, PIN and PUK tries left
  cert               print the authentication certificate (asks the PIN)
  pin change         change the PIN (asks the current PIN and the new one twice)
  pin unblock        unblock the PIN with the PUK and set a new PIN
  sign FILE          sign: PAdES inside a PDF, CAdES .p7m otherwise; adds a signature to a .p7m/.p7s (asks the PIN)
                     [--format cades|pades] [--detached] [--visible --page N --rect x,y,w,h --image sig.png]
                     [--reason T --location T] [--countersign N] [--data ORIGINAL] [-o OUT]
  verify FILE        verify a .p7m, a .p7s (--data ORIGINAL) or a signed PDF [--ca CA.pem]... [--online] [--json]
  extract FILE.p7m   write the signed content (nested and Base64 too) [-o OUT|-]
  pair               cache the certificate (asks the PIN once) so browsers list it without a PIN
  unpair             remove the card's cached certificate from this computer
  browser register   add the CIE module to Chromium's and Firefox's certificate stores
                     (browser unregister, browser status; see 'cie browser')
  doctor             check pcscd, readers, card, NFC drivers, browsers [--bundle FILE: a masked diagnostics
                     zip] [--probe-card: ask the CIE whether the reader carries extended-length APDUs]
  version            print the version

Global flags:
  --reader NAME|N    use this reader (name, part of the name, or number from 'cie readers')
  --pin-stdin        read PIN, PUK and new PIN from standard input, one per line (for scripts)
  --timeout D        give up after D (default 2m)
  -v                 debug logging on standard error (never PINs or card data)

Exit codes: 0 ok, 1 error, 2 usage, 3 no reader or pcscd not running, 4 no card,
5 unsupported card, 6 wrong PIN/PUK, 7 PIN blocked, 8 PUK blocked, 9 PIN in the wrong format,
10 interrupted, 11 a signature is not valid or not trusted.
`

type app struct {
	env      Env
	reader   string
	pinStdin bool
	timeout  time.Duration
	log      *slog.Logger
	in       *bufio.Reader
}

// Main runs the cie command with args (without the program name) and
// returns the exit code.
func Main(args []string, env Env) int {
	a := &app{env: env}
	fs := flag.NewFlagSet("cie", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.reader, "reader", "", "")
	fs.BoolVar(&a.pinStdin, "pin-stdin", false, "")
	fs.DurationVar(&a.timeout, "timeout", 2*time.Minute, "")
	verbose := fs.Bool("v", false, "")
	help := fs.Bool("h", false, "")
	if err := fs.Parse(args); err != nil || *help {
		fmt.Fprint(env.Stderr, usageText)
		if *help {
			return ExitOK
		}
		fmt.Fprintf(env.Stderr, "\n%v\n", err)
		return ExitUsage
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	a.log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	a.in = bufio.NewReader(env.Stdin)

	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(env.Stderr, usageText)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()

	var err error
	switch cmd, sub := rest[0], rest[1:]; cmd {
	case "readers":
		err = a.readers(ctx, sub)
	case "status":
		err = a.status(ctx, sub)
	case "cert":
		err = a.cert(ctx, sub)
	case "pin":
		err = a.pin(ctx, sub)
	case "sign":
		err = a.sign(ctx, sub)
	case "verify":
		err = a.verify(ctx, sub)
	case "extract":
		err = a.extract(ctx, sub)
	case "browser":
		err = a.browser(ctx, sub)
	case "doctor":
		err = a.doctor(ctx, sub)
	case "pair":
		err = a.pair(ctx, sub)
	case "unpair":
		err = a.unpair(ctx, sub)
	case "version":
		fmt.Fprintf(env.Stdout, "cie %s\n", env.Version)
	case "help":
		fmt.Fprint(env.Stdout, usageText)
	default:
		err = &usageError{fmt.Sprintf("unknown command %q; run 'cie help'", cmd)}
	}
	if err == nil {
		return ExitOK
	}
	msg, code := describe(err)
	a.log.Debug("command failed", "err", err)
	fmt.Fprintf(env.Stderr, "cie: %s\n", msg)
	return code
}

// subFlags parses a subcommand's own flags, accepting the global ones too.
func (a *app) subFlags(name string, args []string, def func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.reader, "reader", a.reader, "")
	fs.BoolVar(&a.pinStdin, "pin-stdin", a.pinStdin, "")
	if def != nil {
		def(fs)
	}
	if err := fs.Parse(args); err != nil {
		return &usageError{fmt.Sprintf("%s: %v; run 'cie help'", name, err)}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("%s: unexpected argument %q; run 'cie help'", name, fs.Arg(0))}
	}
	return nil
}

func (a *app) readers(ctx context.Context, args []string) error {
	if err := a.subFlags("readers", args, nil); err != nil {
		return err
	}
	pc, err := pcsc.Establish()
	if err != nil {
		return err
	}
	defer pc.Release()
	names, err := pc.Readers()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return pcsc.ErrNoReaders
	}
	for i, name := range names {
		st, err := pc.Status(ctx, name)
		state := "no card"
		switch {
		case err != nil:
			state = "error: " + err.Error()
		case st.Present:
			state = fmt.Sprintf("card present, ATR %X", st.ATR)
			if f, ok := cie.FamilyByATR(st.ATR); ok {
				state = fmt.Sprintf("card present: CIE (%s), ATR %X", f.Name, st.ATR)
			}
		}
		fmt.Fprintf(a.env.Stdout, "%d: %s — %s\n", i, name, state)
	}
	return nil
}

// open chooses the reader (--reader, or the one with the CIE) and opens the
// card on it through package cardsession: from the card's record when the
// card is paired and recorded in that reader (cardsession.OpenWith), the
// full way otherwise. The session's Close keeps the record up to date.
func (a *app) open(ctx context.Context) (*cardsession.Session, error) {
	opts := &cardsession.Options{Logger: a.log}
	if cache, err := openCache(); err == nil {
		opts.Cache = cache
	} else {
		a.log.Debug("card records not used", "err", err)
	}
	return cardsession.OpenWith(ctx, a.reader, opts)
}

func (a *app) status(ctx context.Context, args []string) error {
	if err := a.subFlags("status", args, nil); err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	c := s.Card
	w := a.env.Stdout
	fmt.Fprintf(w, "Reader:       %s\n", s.Reader)
	fmt.Fprintf(w, "Card:         CIE 3.0, chip %s\n", c.Family().Name)
	fmt.Fprintf(w, "ATR:          % X\n", c.ATR())
	fmt.Fprintf(w, "ID Servizi:   %s\n", c.IDServizi())
	if num, err := c.DocumentNumber(ctx); err == nil {
		fmt.Fprintf(w, "Card number:  %s\n", num)
	} else if errors.Is(err, cie.ErrPINRequired) {
		fmt.Fprintf(w, "Card number:  (the card shows it only after the PIN)\n")
	} else {
		return err
	}
	// The tries left come from the card, never from the record: s.PIN was
	// read when the session opened, the PUK state is read now.
	fmt.Fprintf(w, "PIN:          %s\n", statusLine(s.PIN, "PIN"))
	st, err := c.PUKStatus(ctx)
	if err != nil {
		return err
	}
	s.NoteStatus(cie.PUK, st)
	fmt.Fprintf(w, "PUK:          %s\n", statusLine(st, "PUK"))
	if cert := a.pairedCertificate(ctx, s); cert != nil {
		h := cie.HolderFromCertificate(cert)
		fmt.Fprintf(w, "Holder:       %s %s, codice fiscale %s\n", h.GivenName, h.Surname, h.FiscalCode)
		fmt.Fprintf(w, "Certificate:  valid until %s; paired on this computer\n", cert.NotAfter.Format("2006-01-02"))
	} else {
		fmt.Fprintf(w, "Holder:       shown after the PIN: 'cie pair' (or the first browser login) pairs the card\n")
	}
	return nil
}

func statusLine(st cie.PINStatus, what string) string {
	switch {
	case st.Blocked && what == "PIN":
		return "blocked — unblock it with the PUK: cie pin unblock"
	case st.Blocked:
		return "blocked — the card must be replaced at your municipality"
	case st.Verified:
		return "verified in this session"
	}
	return tries(st.Remaining) + " left"
}

func (a *app) cert(ctx context.Context, args []string) error {
	var der bool
	var out string
	if err := a.subFlags("cert", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&der, "der", false, "")
		fs.StringVar(&out, "o", "", "")
	}); err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := a.verifyPIN(ctx, s); err != nil {
		return err
	}
	cert, err := s.ReadCertificate(ctx)
	if err != nil {
		return err
	}
	h := cie.HolderFromCertificate(cert)
	fmt.Fprintf(a.env.Stderr, "Holder: %s %s, codice fiscale %s; valid until %s\n",
		h.GivenName, h.Surname, h.FiscalCode, cert.NotAfter.Format("2006-01-02"))
	data := cert.Raw
	if !der {
		data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	if out == "" {
		_, err = a.env.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("writing the certificate: %w", err)
	}
	fmt.Fprintf(a.env.Stderr, "Certificate written to %s\n", out)
	return nil
}

// verifyPIN shows the tries left (read from the card when the session
// opened), asks the PIN and verifies it once; from then on the command
// holds the card (cardsession.Session.Hold).
func (a *app) verifyPIN(ctx context.Context, s *cardsession.Session) error {
	st := s.PIN
	if st.Verified {
		return nil
	}
	if st.Blocked {
		return &cie.PINError{Ref: cie.PIN, Blocked: true}
	}
	pin, err := a.askSecret(fmt.Sprintf("PIN, all 8 digits (%s left)", tries(st.Remaining)), st.Remaining == 1)
	if err != nil {
		return err
	}
	defer clear(pin)
	if err := cie.ValidatePIN(pin); err != nil {
		return &inputError{"the PIN must be exactly 8 digits: the first 4 from the municipality receipt, the last 4 from the letter that came with the card."}
	}
	if err := s.Hold(ctx); err != nil {
		return err
	}
	if err := s.Card.VerifyPIN(ctx, pin); err != nil {
		s.NoteError(err)
		return err
	}
	s.NoteVerified(cie.PIN)
	return nil
}

func (a *app) pin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{"pin: say 'cie pin change' or 'cie pin unblock'"}
	}
	switch args[0] {
	case "change":
		return a.pinChange(ctx, args[1:])
	case "unblock":
		return a.pinUnblock(ctx, args[1:])
	}
	return &usageError{fmt.Sprintf("pin: unknown subcommand %q; say 'change' or 'unblock'", args[0])}
}

func (a *app) pinChange(ctx context.Context, args []string) error {
	if err := a.subFlags("pin change", args, nil); err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	st := s.PIN // read from the card when the session opened
	if st.Blocked {
		return &cie.PINError{Ref: cie.PIN, Blocked: true}
	}
	oldPIN, err := a.askSecret(fmt.Sprintf("Current PIN, all 8 digits (%s left)", tries(st.Remaining)), st.Remaining == 1)
	if err != nil {
		return err
	}
	defer clear(oldPIN)
	if err := cie.ValidatePIN(oldPIN); err != nil {
		return &inputError{"the current PIN must be exactly 8 digits."}
	}
	newPIN, err := a.askNewPIN()
	if err != nil {
		return err
	}
	defer clear(newPIN)
	if err := s.Hold(ctx); err != nil { // no other handshake between here and the command
		return err
	}
	if err := s.Card.ChangePIN(ctx, oldPIN, newPIN); err != nil {
		s.NoteError(err)
		return err
	}
	s.NoteVerified(cie.PIN)
	fmt.Fprintln(a.env.Stdout, "PIN changed. Write down the new PIN and keep it away from the card.")
	return nil
}

func (a *app) pinUnblock(ctx context.Context, args []string) error {
	if err := a.subFlags("pin unblock", args, nil); err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Card.PUKStatus(ctx)
	if err != nil {
		return err
	}
	s.NoteStatus(cie.PUK, st)
	if st.Blocked {
		return &cie.PINError{Ref: cie.PUK, Blocked: true}
	}
	puk, err := a.askSecret(fmt.Sprintf("PUK, all 8 digits (%s left)", tries(st.Remaining)), st.Remaining == 1)
	if err != nil {
		return err
	}
	defer clear(puk)
	if err := cie.ValidatePIN(puk); err != nil {
		return &inputError{"the PUK must be exactly 8 digits: the first 4 from the municipality receipt, the last 4 from the letter that came with the card."}
	}
	newPIN, err := a.askNewPIN()
	if err != nil {
		return err
	}
	defer clear(newPIN)
	if err := s.Hold(ctx); err != nil { // no other handshake between here and the command
		return err
	}
	if err := s.Card.UnblockPIN(ctx, puk, newPIN); err != nil {
		s.NoteError(err)
		return err
	}
	s.NoteVerified(cie.PUK)
	s.NoteVerified(cie.PIN)
	fmt.Fprintln(a.env.Stdout, "PIN unblocked and replaced by the new PIN.")
	return nil
}

// askNewPIN asks the new PIN (twice on a terminal) and checks the rules
// before anything reaches the card.
func (a *app) askNewPIN() ([]byte, error) {
	newPIN, err := a.askSecret("New PIN, 8 digits", false)
	if err != nil {
		return nil, err
	}
	if err := cie.ValidateNewPIN(newPIN); err != nil {
		clear(newPIN)
		return nil, &inputError{"the new PIN is not accepted: " + strings.TrimPrefix(err.Error(), "cie: ") + "."}
	}
	if a.pinStdin {
		return newPIN, nil
	}
	again, err := a.askSecret("Repeat the new PIN", false)
	if err != nil {
		clear(newPIN)
		return nil, err
	}
	defer clear(again)
	if string(again) != string(newPIN) {
		clear(newPIN)
		return nil, &inputError{"the two new PINs differ."}
	}
	return newPIN, nil
}

// askSecret reads a PIN or PUK: one line of standard input with --pin-stdin,
// otherwise from the terminal without echo.
func (a *app) askSecret(prompt string, lastTry bool) ([]byte, error) {
	if lastTry {
		fmt.Fprintln(a.env.Stderr, "Warning: this is the last try; a wrong entry blocks it.")
	}
	if a.pinStdin {
		line, err := a.in.ReadBytes('\n')
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			clear(line)
			return nil, &usageError{"--pin-stdin: standard input ended before all the PINs were read"}
		}
		n := len(line)
		for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
			n--
		}
		out := make([]byte, n)
		copy(out, line[:n])
		clear(line)
		return out, nil
	}
	if a.env.ReadPassword == nil {
		return nil, &usageError{"no terminal to ask the PIN on: use --pin-stdin to pass it on standard input"}
	}
	fmt.Fprintf(a.env.Stderr, "%s: ", prompt)
	p, err := a.env.ReadPassword()
	fmt.Fprintln(a.env.Stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the PIN: %w", err)
	}
	return p, nil
}
