// Package pinentry is the client side of the pinentry protocol: it runs a
// pinentry program (by default `cie-tray pinentry`, else the system
// pinentry) and speaks the Assuan dialogue gpg-agent speaks to it, to ask
// the card holder for the CIE PIN. The PKCS#11 module uses it when a
// browser signs without having logged in (see package pkcs11, "Sign on
// demand"), so that no browser needs a PIN dialog of its own.
//
// The dialogue, as the client sees it: the program greets with "OK …";
// each request (SETDESC, SETERROR, OPTION, GETPIN, …) is answered by "OK",
// or "ERR <code> <text>"; GETPIN's answer comes first as data lines
// "D <percent-escaped bytes>". Status ("S") and comment ("#") lines are
// skipped. Arguments are percent-escaped (%, CR, LF and other control
// bytes as %XX), lines are at most 1000 bytes. A cancel is the gpg-error
// code GPG_ERR_CANCELED (99), a timeout GPG_ERR_TIMEOUT (62), whatever the
// error source.
//
// Secrets: the PIN comes back as a []byte the caller clears; the client
// reads the program's output into buffers of its own and clears them when
// the dialogue ends. Nothing is logged. The client never sends
// SETKEYINFO or OPTION allow-external-password-cache, so no pinentry
// offers to store the PIN in a keyring.
package pinentry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// MaxLine is the longest request or answer line, without its newline
// (ASSUAN_LINELENGTH).
const MaxLine = 1000

// gpg-error codes (the low 16 bits of an ERR code).
const (
	codeTimeout       = 62
	codeCancelled     = 99
	codeNotConfirmed  = 114
	codeUnknownOption = 174
)

var (
	// ErrCancelled is returned when the user cancelled the dialog.
	ErrCancelled = errors.New("pinentry: cancelled")
	// ErrTimeout is returned when the dialog's timeout expired.
	ErrTimeout = errors.New("pinentry: timeout")
)

// ProtocolError is an ERR answer other than a cancel or a timeout.
type ProtocolError struct {
	Request string // the request's name, e.g. "GETPIN"
	Code    uint32 // the gpg-error value
	Text    string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("pinentry: %s: error %d: %s", e.Request, e.Code, e.Text)
}

// Dialog is what one dialog shows. Empty fields are not sent.
type Dialog struct {
	Title       string // SETTITLE
	Description string // SETDESC: the text above the field; newlines allowed
	Prompt      string // SETPROMPT: the label of the field
	Error       string // SETERROR: why the entry is asked again
	OK          string // SETOK
	Cancel      string // SETCANCEL
	// Timeout closes the dialog as cancelled after this long (SETTIMEOUT,
	// whole seconds); 0 means none.
	Timeout time.Duration
	// Options are sent as "OPTION name=value" before the texts; a program
	// that does not know one answers an error, which is ignored.
	Options []Option
}

// Option is one OPTION request.
type Option struct{ Name, Value string }

// Client speaks the protocol to one running pinentry program.
type Client struct {
	w   io.Writer
	r   *lineReader
	err error // the first I/O error; the client is unusable after it
}

// NewClient starts the dialogue on the program's output r and input w: it
// reads the greeting.
func NewClient(r io.Reader, w io.Writer) (*Client, error) {
	c := &Client{w: w, r: newLineReader(r)}
	if _, err := c.answer("greeting"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close clears the client's buffers. It does not end the program.
func (c *Client) Close() { c.r.clear() }

// escape percent-escapes an argument: '%', CR, LF and every other control
// byte become %XX.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '%' || ch < 0x20 || ch == 0x7F {
			fmt.Fprintf(&b, "%%%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// request sends one request line and reads its answer; data lines are
// appended to dst (which may be nil when no data is expected).
func (c *Client) request(name, arg string, dst *[]byte) error {
	if c.err != nil {
		return c.err
	}
	line := name
	if arg != "" {
		line += " " + arg
	}
	if len(line) > MaxLine {
		return fmt.Errorf("pinentry: %s: request of %d bytes exceeds the %d-byte line limit", name, len(line), MaxLine)
	}
	if _, err := io.WriteString(c.w, line+"\n"); err != nil {
		c.err = fmt.Errorf("pinentry: sending %s: %w", name, err)
		return c.err
	}
	data, err := c.answer(name)
	if dst != nil {
		*dst = data
	} else {
		clear(data)
	}
	return err
}

// answer reads lines up to OK or ERR and returns the decoded data lines.
func (c *Client) answer(name string) ([]byte, error) {
	var data []byte
	fail := func(err error) ([]byte, error) {
		clear(data)
		return nil, err
	}
	for {
		line, err := c.r.line()
		if err != nil {
			c.err = fmt.Errorf("pinentry: reading the answer to %s: %w", name, err)
			return fail(c.err)
		}
		switch {
		case bytes.Equal(line, []byte("OK")) || bytes.HasPrefix(line, []byte("OK ")):
			return data, nil
		case bytes.HasPrefix(line, []byte("ERR ")):
			return fail(parseErr(name, string(line[4:])))
		case bytes.HasPrefix(line, []byte("D ")):
			if data == nil {
				data = make([]byte, 0, MaxLine) // no reallocation leaves copies of the PIN behind
			}
			var derr error
			if data, derr = appendUnescaped(data, line[2:]); derr != nil {
				c.err = fmt.Errorf("pinentry: answer to %s: %w", name, derr)
				return fail(c.err)
			}
		case bytes.HasPrefix(line, []byte("S ")), bytes.Equal(line, []byte("S")), bytes.HasPrefix(line, []byte("#")):
			// status and comment lines carry nothing the client needs
		case bytes.HasPrefix(line, []byte("INQUIRE ")):
			// No pinentry inquires; answer "no data" so that it goes on.
			if _, err := io.WriteString(c.w, "CAN\n"); err != nil {
				c.err = fmt.Errorf("pinentry: answering an inquiry: %w", err)
				return fail(c.err)
			}
		default:
			c.err = fmt.Errorf("pinentry: unexpected answer to %s: %.40q", name, line)
			return fail(c.err)
		}
	}
}

func parseErr(name, rest string) error {
	codeText, text, _ := strings.Cut(rest, " ")
	code, err := strconv.ParseUint(codeText, 10, 32)
	if err != nil {
		return &ProtocolError{Request: name, Text: rest}
	}
	switch code & 0xFFFF {
	case codeCancelled, codeNotConfirmed:
		return ErrCancelled
	case codeTimeout:
		return ErrTimeout
	}
	return &ProtocolError{Request: name, Code: uint32(code), Text: text}
}

// appendUnescaped decodes the %XX escapes of a data line.
func appendUnescaped(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			dst = append(dst, s[i])
			continue
		}
		if i+2 >= len(s) {
			return dst, errors.New("truncated escape in a data line")
		}
		v, ok := unhex(s[i+1], s[i+2])
		if !ok {
			return dst, errors.New("bad escape in a data line")
		}
		dst = append(dst, v)
		i += 2
	}
	return dst, nil
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexVal(a)
	y, ok2 := hexVal(b)
	return x<<4 | y, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// setup sends the options and texts of a dialog.
func (c *Client) setup(d Dialog) error {
	for _, o := range d.Options {
		err := c.request("OPTION", escape(o.Name+"="+o.Value), nil)
		var pe *ProtocolError
		if errors.As(err, &pe) {
			continue // "unknown option": another pinentry, the texts say it all
		}
		if err != nil {
			return err
		}
	}
	for _, s := range []struct{ cmd, text string }{
		{"SETTITLE", d.Title}, {"SETDESC", d.Description}, {"SETPROMPT", d.Prompt},
		{"SETERROR", d.Error}, {"SETOK", d.OK}, {"SETCANCEL", d.Cancel},
	} {
		if s.text == "" {
			continue
		}
		if err := c.request(s.cmd, escape(s.text), nil); err != nil {
			return err
		}
	}
	if d.Timeout > 0 {
		secs := int((d.Timeout + time.Second - 1) / time.Second)
		if err := c.request("SETTIMEOUT", strconv.Itoa(secs), nil); err != nil {
			return err
		}
	}
	return nil
}

// GetPIN shows the dialog and returns what the user typed; the caller
// clears it. ErrCancelled and ErrTimeout report a closed dialog.
func (c *Client) GetPIN(d Dialog) ([]byte, error) {
	if err := c.setup(d); err != nil {
		return nil, err
	}
	var pin []byte
	if err := c.request("GETPIN", "", &pin); err != nil {
		return nil, err
	}
	if pin == nil {
		pin = []byte{}
	}
	return pin, nil
}

// Message shows the dialog's description with one button (MESSAGE).
func (c *Client) Message(d Dialog) error {
	if err := c.setup(d); err != nil {
		return err
	}
	err := c.request("MESSAGE", "", nil)
	if errors.Is(err, ErrCancelled) {
		return nil // closing a message is reading it
	}
	return err
}

// Bye ends the dialogue.
func (c *Client) Bye() error { return c.request("BYE", "", nil) }

// lineReader reads lines into buffers it owns, so that they can be
// cleared: the PIN passes through them.
type lineReader struct {
	r     io.Reader
	buf   []byte // bytes read, not yet returned
	chunk []byte
	out   []byte // the last line returned
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: r, buf: make([]byte, 0, 2*MaxLine), chunk: make([]byte, 512), out: make([]byte, 0, MaxLine+2)}
}

// line returns the next line without its newline (and CR); the slice is
// valid until the next call.
func (l *lineReader) line() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
			clear(l.out)
			l.out = append(l.out[:0], l.buf[:i]...)
			n := copy(l.buf, l.buf[i+1:])
			clear(l.buf[n:])
			l.buf = l.buf[:n]
			return bytes.TrimSuffix(l.out, []byte("\r")), nil
		}
		if len(l.buf) > MaxLine+1 {
			return nil, fmt.Errorf("a line longer than %d bytes", MaxLine)
		}
		n, err := l.r.Read(l.chunk)
		l.buf = append(l.buf, l.chunk[:n]...)
		clear(l.chunk[:n])
		if err != nil {
			if err == io.EOF && n == 0 {
				return nil, io.ErrUnexpectedEOF
			}
			if n == 0 {
				return nil, err
			}
		}
	}
}

func (l *lineReader) clear() {
	clear(l.buf[:cap(l.buf)])
	clear(l.out[:cap(l.out)])
	clear(l.chunk)
	l.buf = l.buf[:0]
}

// Program is a pinentry program: the executable and its arguments.
type Program struct {
	Path string
	Args []string
	// Env is the program's environment; nil means the caller's.
	Env []string
}

// String names the program for logs, quoted as ParseCommand reads it.
func (p Program) String() string {
	words := append([]string{p.Path}, p.Args...)
	for i, w := range words {
		switch {
		case w != "" && !strings.ContainsAny(w, " \t\n\r'\""):
		case !strings.Contains(w, `"`):
			words[i] = `"` + w + `"`
		case !strings.Contains(w, "'"):
			words[i] = "'" + w + "'"
		}
	}
	return strings.Join(words, " ")
}

// run starts the program, runs fn on a client, says BYE and waits for the
// program to exit; ctx bounds the whole dialogue (the program is killed
// when it ends).
func (p Program) run(ctx context.Context, fn func(*Client) error) error {
	cmd := exec.CommandContext(ctx, p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pinentry: starting %s: %w", p, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pinentry: starting %s: %w", p, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pinentry: starting %s: %w", p, err)
	}
	c, err := NewClient(stdout, stdin)
	if err == nil {
		err = fn(c)
		if c.err == nil {
			_ = c.Bye() // an old pinentry may exit without answering
		}
		c.Close()
	}
	stdin.Close()
	werr := cmd.Wait()
	var pe *ProtocolError
	switch {
	case err == nil, errors.Is(err, ErrCancelled), errors.Is(err, ErrTimeout), errors.As(err, &pe):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("pinentry: %s: %w", p, ctx.Err())
	case werr != nil:
		return fmt.Errorf("pinentry: %s failed (%v): %w", p, werr, err)
	}
	return err
}

// GetPIN runs the program for one PIN dialog and returns what the user
// typed; the caller clears it.
func (p Program) GetPIN(ctx context.Context, d Dialog) ([]byte, error) {
	var pin []byte
	err := p.run(ctx, func(c *Client) error {
		var err error
		pin, err = c.GetPIN(d)
		return err
	})
	if err != nil {
		clear(pin)
		return nil, err
	}
	return pin, nil
}

// Message runs the program to show a message with one button.
func (p Program) Message(ctx context.Context, d Dialog) error {
	return p.run(ctx, func(c *Client) error { return c.Message(d) })
}
