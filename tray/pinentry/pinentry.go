// Package pinentry owns the server side of the pinentry protocol: the
// Assuan dialogue (libassuan's line protocol, as gpg-agent speaks it to
// pinentry programs) on a reader and a writer, with the dialog itself
// behind the Prompter interface. `cie-tray pinentry` puts the CIE PIN
// dialog behind it; the PKCS#11 module runs that program to ask the PIN
// when a browser signs (protected authentication path), and any
// pinentry-speaking client can use it.
//
// The dialogue: the server greets with "OK Pleased to meet you"; each
// request line gets "OK", "ERR <code> <text>", or data lines "D …" and
// status lines "S …" before the final "OK". Arguments and data are
// percent-escaped (%25 for '%', %0A for a newline, %0D for CR, any byte as
// %XX). Lines are at most 1000 bytes. Supported requests: SETTITLE,
// SETDESC, SETPROMPT, SETERROR, SETOK, SETCANCEL, SETNOTOK, SETREPEAT,
// SETREPEATERROR, SETTIMEOUT, SETKEYINFO, SETQUALITYBAR (accepted,
// ignored), OPTION, GETINFO (flavor, version, pid, ttyinfo), GETPIN,
// CONFIRM [--one-button], MESSAGE, RESET, NOP, HELP, BYE. Error codes are
// gpg-error values with the pinentry source (5), so that gpg-agent and
// other clients recognise a cancel (83886179) or a timeout (83886142).
//
// CIE extensions, for a client that knows it talks to cie-tray (other
// pinentry programs answer them with "unknown option", which such a
// client ignores):
//
//	OPTION cie-tries-left=N   tries left for the PIN (the dialog warns when N is 1)
//	OPTION cie-holder=NAME    the card holder's name (percent-escaped)
//
// Without them the dialog looks for the tries left in SETDESC ("2 tries
// left", "2 tentativi rimasti"), so that a description written for any
// pinentry also gives the warning.
package pinentry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Error codes (gpg-error: source << 24 | code).
const (
	sourcePinentry = 5 << 24
	sourceAssuan   = 32 << 24 // GPG_ERR_SOURCE_USER_1, libassuan's default

	// CodeCancelled: the user cancelled (GPG_ERR_CANCELED).
	CodeCancelled = sourcePinentry | 99
	// CodeNotConfirmed: CONFIRM answered "no" (GPG_ERR_NOT_CONFIRMED).
	CodeNotConfirmed = sourcePinentry | 114
	// CodeTimeout: SETTIMEOUT expired (GPG_ERR_TIMEOUT).
	CodeTimeout = sourcePinentry | 62
	// CodeUnknownOption: OPTION with a name this server does not know.
	CodeUnknownOption = sourcePinentry | 174
	// CodeUnknownCommand: a request this server does not know (GPG_ERR_ASS_UNKNOWN_CMD).
	CodeUnknownCommand = sourceAssuan | 275
	// CodeSyntax: malformed arguments (GPG_ERR_ASS_SYNTAX).
	CodeSyntax = sourceAssuan | 276
	// CodeLineTooLong: a request over 1000 bytes (GPG_ERR_ASS_LINE_TOO_LONG).
	CodeLineTooLong = sourceAssuan | 263
	// CodeGeneral: the dialog failed (GPG_ERR_GENERAL).
	CodeGeneral = sourcePinentry | 1
)

// MaxLine is the longest line of the protocol, without its newline.
const MaxLine = 1000

// ErrCancelled is returned by a Prompter when the user cancelled.
var ErrCancelled = errors.New("pinentry: cancelled")

// ErrTimeout is returned by a Prompter when Request.Timeout expired.
var ErrTimeout = errors.New("pinentry: timeout")

// Request is what the client set before GETPIN, CONFIRM or MESSAGE.
type Request struct {
	Title       string // SETTITLE: the window title
	Description string // SETDESC: the text above the field (may hold newlines)
	Prompt      string // SETPROMPT: the label of the field
	Error       string // SETERROR: shown once, for the next dialog only (a previous wrong PIN)
	OK          string // SETOK: the OK button's label
	Cancel      string // SETCANCEL: the Cancel button's label
	NotOK       string // SETNOTOK: a third button for CONFIRM
	Repeat      string // SETREPEAT: ask twice, with this label for the second field
	RepeatError string // SETREPEATERROR: shown when the two entries differ
	KeyInfo     string // SETKEYINFO
	Timeout     time.Duration

	// TriesLeft is the PIN's tries left from OPTION cie-tries-left or
	// SETDESC; -1 when unknown.
	TriesLeft int
	// Holder is the card holder from OPTION cie-holder.
	Holder string
	// Options are the other OPTION name=value pairs (lc-messages, ttyname, …).
	Options map[string]string

	// OneButton is CONFIRM --one-button (a message with only OK).
	OneButton bool
}

// Prompter shows the dialogs. Each method blocks until the user answers.
type Prompter interface {
	// GetPIN asks for a secret and returns it; the server clears it after
	// sending. It returns ErrCancelled or ErrTimeout when appropriate.
	GetPIN(ctx context.Context, r Request) ([]byte, error)
	// Confirm asks a yes/no question (or shows a message when
	// r.OneButton); it returns true for OK.
	Confirm(ctx context.Context, r Request) (bool, error)
}

// Version is reported by GETINFO version.
const Version = "1.0.0"

// Server runs the dialogue with one client.
type Server struct {
	Prompter Prompter
	// Flavor is reported by GETINFO flavor (default "cie").
	Flavor string
	// Log, if set, receives the request names (never arguments).
	Log func(format string, args ...any)

	req Request
}

// knownOptions are the OPTION names gpg-agent and clients send.
var knownOptions = map[string]bool{
	"grab": true, "no-grab": true, "ttyname": true, "ttytype": true, "lc-ctype": true,
	"lc-messages": true, "parent-wid": true, "touch-file": true, "owner": true,
	"default-ok": true, "default-cancel": true, "default-yes": true, "default-no": true,
	"default-prompt": true, "default-pwmngr": true, "default-cf-visi": true, "default-tt-visi": true,
	"default-tt-hide": true, "default-capshint": true, "allow-external-password-cache": true,
	"allow-emacs-prompt": true, "invisible-char": true, "formatted-passphrase": true,
	"formatted-passphrase-hint": true, "constraints-enforce": true, "constraints-hint-short": true,
	"constraints-hint-long": true, "constraints-error-title": true, "display": true, "xauthority": true,
	"putenv": true, "no-auto-repeat": true,
	"cie-tries-left": true, "cie-holder": true,
}

func (s *Server) reset() {
	s.req = Request{TriesLeft: -1, Options: map[string]string{}}
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

// Serve greets the client and answers requests from in on out until BYE,
// the end of in, or ctx done. It returns nil after BYE or EOF.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	s.reset()
	w := bufio.NewWriter(out)
	send := func(lines ...string) error {
		for _, l := range lines {
			if _, err := w.WriteString(l + "\n"); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	if err := send("OK Pleased to meet you"); err != nil {
		return fmt.Errorf("pinentry: writing greeting: %w", err)
	}
	r := bufio.NewReaderSize(in, MaxLine+2)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, tooLong, err := readLine(r)
		if errors.Is(err, io.EOF) && line == "" && !tooLong {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("pinentry: reading request: %w", err)
		}
		if tooLong {
			if err := send(errLine(CodeLineTooLong, "Line too long")); err != nil {
				return err
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		reply, bye := s.handle(ctx, line)
		if err := send(reply...); err != nil {
			return fmt.Errorf("pinentry: writing reply: %w", err)
		}
		if bye {
			return nil
		}
	}
}

// readLine reads one line without its "\n" (and "\r"); tooLong reports a
// line over MaxLine bytes, which is consumed entirely.
func readLine(r *bufio.Reader) (line string, tooLong bool, err error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if len(b)+len(chunk) > MaxLine {
			tooLong = true
		} else {
			b = append(b, chunk...)
		}
		if err != nil {
			return string(b), tooLong, err
		}
		if !isPrefix {
			break
		}
	}
	return strings.TrimSuffix(string(b), "\r"), tooLong, nil
}

func errLine(code int, text string) string {
	src := "<Pinentry>"
	if code>>24 == sourceAssuan>>24 {
		src = "<User defined source 1>"
	}
	return fmt.Sprintf("ERR %d %s %s", code, text, src)
}

// handle answers one request line; bye reports BYE.
func (s *Server) handle(ctx context.Context, line string) (reply []string, bye bool) {
	cmd, arg, _ := strings.Cut(line, " ")
	cmd = strings.ToUpper(cmd)
	s.logf("pinentry: %s", cmd)
	ok := []string{"OK"}
	set := func(dst *string) []string {
		v, err := Unescape(arg)
		if err != nil {
			return []string{errLine(CodeSyntax, "Invalid value")}
		}
		*dst = v
		return ok
	}
	switch cmd {
	case "BYE":
		return []string{"OK closing connection"}, true
	case "NOP", "SETQUALITYBAR", "SETQUALITYBAR_TT", "SETGENPIN", "SETGENPIN_TT", "CLEARPASSPHRASE":
		return ok, false
	case "RESET":
		s.reset()
		return ok, false
	case "SETTITLE":
		return set(&s.req.Title), false
	case "SETDESC":
		r := set(&s.req.Description)
		if s.req.Options["cie-tries-left"] == "" {
			s.req.TriesLeft = TriesInText(s.req.Description)
		}
		return r, false
	case "SETPROMPT":
		return set(&s.req.Prompt), false
	case "SETERROR":
		return set(&s.req.Error), false
	case "SETOK":
		return set(&s.req.OK), false
	case "SETCANCEL":
		return set(&s.req.Cancel), false
	case "SETNOTOK":
		return set(&s.req.NotOK), false
	case "SETREPEAT":
		if arg == "" {
			arg = "Repeat:"
		}
		return set(&s.req.Repeat), false
	case "SETREPEATERROR":
		return set(&s.req.RepeatError), false
	case "SETKEYINFO":
		return set(&s.req.KeyInfo), false
	case "SETTIMEOUT":
		n, err := strconv.Atoi(strings.TrimSpace(arg))
		if err != nil || n < 0 {
			return []string{errLine(CodeSyntax, "Invalid value")}, false
		}
		s.req.Timeout = time.Duration(n) * time.Second
		return ok, false
	case "OPTION":
		return s.option(arg), false
	case "GETINFO":
		return s.getInfo(strings.TrimSpace(arg)), false
	case "GETPIN":
		return s.getPIN(ctx), false
	case "CONFIRM":
		one := strings.TrimSpace(arg) == "--one-button"
		return s.confirm(ctx, one), false
	case "MESSAGE":
		return s.confirm(ctx, true), false
	case "HELP":
		return []string{
			"# BYE", "# CONFIRM [--one-button]", "# GETINFO flavor|version|pid|ttyinfo", "# GETPIN",
			"# MESSAGE", "# NOP", "# OPTION name[=value]", "# RESET", "# SETCANCEL", "# SETDESC",
			"# SETERROR", "# SETKEYINFO", "# SETNOTOK", "# SETOK", "# SETPROMPT", "# SETREPEAT",
			"# SETREPEATERROR", "# SETTIMEOUT", "# SETTITLE", "OK",
		}, false
	}
	return []string{errLine(CodeUnknownCommand, "Unknown IPC command")}, false
}

func (s *Server) option(arg string) []string {
	arg = strings.TrimLeft(arg, "-")
	name, value, hasValue := strings.Cut(arg, "=")
	if !hasValue {
		name, value, _ = strings.Cut(arg, " ")
	}
	name = strings.ToLower(strings.TrimSpace(name))
	value = strings.TrimSpace(value)
	if !knownOptions[name] {
		return []string{errLine(CodeUnknownOption, "Unknown option")}
	}
	v, err := Unescape(value)
	if err != nil {
		return []string{errLine(CodeSyntax, "Invalid value")}
	}
	s.req.Options[name] = v
	switch name {
	case "cie-tries-left":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return []string{errLine(CodeSyntax, "Invalid value")}
		}
		s.req.TriesLeft = n
	case "cie-holder":
		s.req.Holder = v
	}
	return []string{"OK"}
}

func (s *Server) getInfo(what string) []string {
	var v string
	switch what {
	case "flavor":
		v = s.Flavor
		if v == "" {
			v = "cie"
		}
	case "version":
		v = Version
	case "pid":
		v = strconv.Itoa(os.Getpid())
	case "ttyinfo":
		v = "- - -"
	default:
		return []string{errLine(CodeSyntax, "Invalid value")}
	}
	return []string{"D " + Escape(v), "OK"}
}

// once returns the request for one dialog and forgets SETERROR, which
// belongs to the next dialog only.
func (s *Server) once() Request {
	r := s.req
	r.Options = make(map[string]string, len(s.req.Options))
	for k, v := range s.req.Options {
		r.Options[k] = v
	}
	s.req.Error = ""
	return r
}

func promptError(err error) []string {
	switch {
	case errors.Is(err, ErrCancelled), errors.Is(err, context.Canceled):
		return []string{errLine(CodeCancelled, "Operation cancelled")}
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return []string{errLine(CodeTimeout, "Timeout")}
	}
	return []string{errLine(CodeGeneral, "General error")}
}

func (s *Server) getPIN(ctx context.Context) []string {
	r := s.once()
	ctx, cancel := withTimeout(ctx, r.Timeout)
	defer cancel()
	pin, err := s.Prompter.GetPIN(ctx, r)
	defer clear(pin)
	if err != nil {
		return promptError(err)
	}
	var out []string
	if r.Repeat != "" {
		out = append(out, "S PIN_REPEATED")
	}
	if len(pin) > 0 {
		out = append(out, "D "+Escape(string(pin)))
	}
	return append(out, "OK")
}

func (s *Server) confirm(ctx context.Context, one bool) []string {
	r := s.once()
	r.OneButton = one
	ctx, cancel := withTimeout(ctx, r.Timeout)
	defer cancel()
	yes, err := s.Prompter.Confirm(ctx, r)
	if err != nil {
		return promptError(err)
	}
	if !yes {
		if one {
			return []string{errLine(CodeCancelled, "Operation cancelled")}
		}
		return []string{errLine(CodeNotConfirmed, "Not confirmed")}
	}
	return []string{"OK"}
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Escape percent-escapes s for an Assuan line: '%', CR, LF and the other
// control characters become %XX.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c < 0x20 || c == 0x7F {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Unescape decodes %XX escapes; a '%' not followed by two hex digits is an
// error.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("pinentry: truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("pinentry: bad escape %q", s[i:i+3])
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

var triesRE = regexp.MustCompile(`(?i)\b(\d+)\s+(?:tries|try|attempts?|tentativ[io])\b`)

// TriesInText finds "N tries left" (or "N tentativi") in a description and
// returns N, or -1 when the text says nothing about tries.
func TriesInText(s string) int {
	m := triesRE.FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}
