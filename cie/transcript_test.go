package cie

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

var update = flag.Bool("update", false, "re-record cie/testdata/*.transcript from the simulator")

// transcriptLine is one line of a transcript: a step comment, a command or
// a response.
type transcriptLine struct {
	kind byte // '#', '>', '<'
	text string
	data []byte
}

// recorder is a transport that records every exchange with step comments.
type recorder struct {
	inner apdu.Transport
	mu    sync.Mutex
	lines []transcriptLine
}

func (r *recorder) step(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, transcriptLine{kind: '#', text: name})
}

func (r *recorder) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := r.inner.Transmit(ctx, cmd)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, transcriptLine{kind: '>', text: describe(cmd), data: bytes.Clone(cmd)})
	if err != nil {
		return nil, err
	}
	r.lines = append(r.lines, transcriptLine{kind: '<', data: bytes.Clone(resp)})
	return resp, nil
}

// describe names a command for the transcript comments.
func describe(cmd []byte) string {
	if len(cmd) < 4 {
		return "?"
	}
	sm := ""
	if cmd[0]&0x0C == 0x0C {
		sm = " (SM)"
	}
	name := map[byte]string{
		insSelect: "SELECT", insReadBinary: "READ BINARY", insGetData: "GET DATA", insMSESet: "MSE SET",
		insPSOVerifyCertificate: "PSO VERIFY CERTIFICATE", insGetChallenge: "GET CHALLENGE",
		insExternalAuthenticate: "EXTERNAL AUTHENTICATE", insInternalAuthenticate: "INTERNAL AUTHENTICATE",
		insVerify: "VERIFY", 0xC0: "GET RESPONSE", insChangeReferenceData: "CHANGE REFERENCE DATA",
		insResetRetryCounter: "RESET RETRY COUNTER",
	}[cmd[1]]
	if name == "" {
		name = fmt.Sprintf("INS %02X", cmd[1])
	}
	if cmd[0]&0x10 != 0 {
		name += " (chained)"
	}
	return name + sm
}

// format writes lines as annotated hex text.
func format(header string, lines []transcriptLine) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	for _, l := range lines {
		switch l.kind {
		case '#':
			fmt.Fprintf(&b, "\n# %s\n", l.text)
		case '>':
			fmt.Fprintf(&b, "> %s  # %s\n", strings.ToUpper(hex.EncodeToString(l.data)), l.text)
		case '<':
			fmt.Fprintf(&b, "< %s\n", strings.ToUpper(hex.EncodeToString(l.data)))
		}
	}
	return b.Bytes()
}

// parseTranscript reads a transcript: "# step" comments, "> hex" commands
// (a trailing "# …" is a comment) and "< hex" responses.
func parseTranscript(b []byte) ([]transcriptLine, error) {
	var out []transcriptLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			out = append(out, transcriptLine{kind: '#', text: strings.TrimSpace(line[1:])})
		case line[0] == '>' || line[0] == '<':
			text, comment, _ := strings.Cut(line[1:], "#")
			data, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(text), " ", ""))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			out = append(out, transcriptLine{kind: line[0], text: strings.TrimSpace(comment), data: data})
		default:
			return nil, fmt.Errorf("line %d: %q is not a comment, command or response", n, line)
		}
	}
	return out, sc.Err()
}

// errTranscript: the host sent something the transcript does not have.
var errTranscript = errors.New("command differs from the transcript")

// player is a strict, ordered transport: every command must equal the next
// recorded one, byte for byte; anything else fails the exchange.
type player struct {
	lines []transcriptLine
	pos   int
	step  string
	err   error
}

func (p *player) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	for p.pos < len(p.lines) && p.lines[p.pos].kind == '#' {
		p.step = p.lines[p.pos].text
		p.pos++
	}
	if p.pos+1 >= len(p.lines) || p.lines[p.pos].kind != '>' || p.lines[p.pos+1].kind != '<' {
		p.err = fmt.Errorf("step %q: command %X after the end of the transcript: %w", p.step, cmd, errTranscript)
		return nil, p.err
	}
	want := p.lines[p.pos]
	if !bytes.Equal(cmd, want.data) {
		p.err = fmt.Errorf("step %q, transcript entry %d (%s):\n got command %X\nwant command %X: %w", p.step, p.pos, want.text, cmd, want.data, errTranscript)
		return nil, p.err
	}
	resp := p.lines[p.pos+1].data
	p.pos += 2
	return bytes.Clone(resp), nil
}

// done fails t unless the whole transcript was replayed without a mismatch.
func (p *player) done(t *testing.T) {
	t.Helper()
	if p.err != nil {
		t.Fatal(p.err)
	}
	for p.pos < len(p.lines) && p.lines[p.pos].kind == '#' {
		p.pos++
	}
	if p.pos != len(p.lines) {
		t.Fatalf("the session ended at transcript entry %d of %d (step %q)", p.pos, len(p.lines), p.step)
	}
}

// session runs the recorded session: Open, VerifyPIN, Certificate,
// SignDigestInfo. step names each operation in the transcript.
func session(t *testing.T, tr apdu.Transport, atr []byte, step func(string)) {
	ctx := context.Background()
	step("Open: identify the chip, read EF.SN.ICC and EF.ID_Servizi")
	c, err := Open(ctx, tr, atr, testOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	step("VerifyPIN: DH parameters, IFD-CA key, EF.Int.Kpub, DH, DAPP, VERIFY")
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatalf("VerifyPIN: %v", err)
	}
	step("Certificate: EF.CertCIE under SM")
	cert, err := c.Certificate(ctx)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	step("SignDigestInfo: MSE SET key 81, INTERNAL AUTHENTICATE")
	digest := sha256.Sum256([]byte("transcript"))
	di, _ := DigestInfo(crypto.SHA256, digest[:])
	sig, err := c.SignDigestInfo(ctx, di)
	if err != nil {
		t.Fatalf("SignDigestInfo: %v", err)
	}
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
}

// TestTranscripts replays the recorded sessions of the Gemalto and NXP
// families; -update records them again from the simulator.
func TestTranscripts(t *testing.T) {
	for _, family := range []string{"gemalto", "nxp"} {
		t.Run(family, func(t *testing.T) {
			path := filepath.Join("testdata", family+".transcript")
			atr := familyByID(family).ATR
			if *update {
				sim := newSim(t, family, nil)
				rec := &recorder{inner: sim}
				session(t, rec, atr, rec.step)
				header := fmt.Sprintf("# CIE session transcript, family %s (ATR %s), recorded from internal/ciesim\n"+
					"# with its committed test state and deterministic host and card randomness.\n"+
					"# Re-record: go test ./cie -run TestTranscripts -update\n"+
					"# \">\" command, \"<\" response (data and SW1 SW2), \"#\" comment.\n", family, hexSpaced(atr))
				if err := os.WriteFile(path, format(header, rec.lines), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to record it)", err)
			}
			lines, err := parseTranscript(b)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			p := &player{lines: lines}
			session(t, p, atr, func(string) {})
			p.done(t)

			// The player is strict: other host randomness changes Y_IFD,
			// and the first MSE SET no longer matches.
			p = &player{lines: lines}
			c, err := Open(context.Background(), p, atr, &Options{Rand: detRand(0x77)})
			if err != nil {
				t.Fatalf("Open (replay): %v", err)
			}
			if err := c.VerifyPIN(context.Background(), testPIN); !errors.Is(err, errTranscript) {
				t.Fatalf("VerifyPIN with other randomness: %v, want a transcript mismatch", err)
			}
		})
	}
}
