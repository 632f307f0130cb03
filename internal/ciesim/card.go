package ciesim

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
)

// Default reference data and counters of a new card (cie-protocol.md §7).
const (
	DefaultPIN      = "12345678"
	DefaultPUK      = "87654321"
	DefaultPINTries = 3
	DefaultPUKTries = 10
)

// Config configures a simulated card. The zero value is a Gemalto card with
// a freshly generated State (slow: pass State, e.g. from TestState, in
// tests).
type Config struct {
	// Family is a family id of architecture.md's table ("nxp", "gemalto",
	// "gemalto2", "stm", "stm2", "stm3", "actalis", "actalis2023",
	// "actalis-b946", "bit4id", "bit4id2023", "bit4id-b9547") or "foreign"
	// (a non-CIE card). Empty means DefaultFamily.
	Family string
	// ATR overrides the family's ATR (e.g. zeroed historical bytes, to
	// exercise the host's probing); the behaviour stays the family's.
	ATR []byte
	// State holds the card's keys and certificates. Nil: NewState(Rand, Now(), Holder).
	State *State
	// PIN and PUK are the initial reference data, 8 digits each (defaults
	// DefaultPIN, DefaultPUK). New copies them.
	PIN, PUK []byte
	// PINTries and PUKTries are the retry counters (defaults 3 and 10).
	PINTries, PUKTries int
	// Holder overrides the State's holder field by field; when it changes
	// anything the holder certificate is re-issued (deterministically) for
	// this card, in memory.
	Holder Holder
	// Rand is the card's randomness (challenges, DH, PRND); default crypto/rand.
	Rand io.Reader
	// Now is the clock used when a State must be generated; default time.Now.
	Now func() time.Time
	// Latency is added to every APDU (SetLatency changes it).
	Latency time.Duration
	// Logger, if set, receives one line per APDU: header, lengths and status
	// word, never command or response data.
	Logger *slog.Logger
}

// String describes the configuration without the PIN and PUK.
func (c Config) String() string {
	return fmt.Sprintf("ciesim.Config{Family:%q PIN:[redacted] PUK:[redacted]}", c.Family)
}

// GoString is String, so that %#v prints no PIN either.
func (c Config) GoString() string { return c.String() }

// LogValue describes the configuration for log/slog without the PIN and PUK.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Format prints String for every verb: fmt calls String only for %v, %s,
// %q, %x and %X, and would print the PIN's bytes for %d.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// Stats counts the APDUs the card received and the bytes in each direction.
type Stats struct {
	APDUs    int // command APDUs received
	BytesIn  int // command bytes received
	BytesOut int // response bytes sent
}

// Card is a simulated CIE 3.0 (architecture.md "Card behaviour"). It is an
// apdu.Transport, safe for concurrent use; APDUs are processed one at a time.
type Card struct {
	mu      sync.Mutex
	fam     *family
	atr     []byte
	st      *State
	holder  Holder
	snicc   [12]byte
	cert    *x509.Certificate
	files   map[dfID]map[uint16]*file
	rand    io.Reader
	log     *slog.Logger
	latency time.Duration

	pin, puk         []byte
	pinMax, pukMax   int
	pinLeft, pukLeft int

	// Volatile state, lost on reset and (except df) on application SELECT.
	df      dfID
	ef      *file
	s       secEnv
	pending []byte // protected or plain response bytes not yet fetched by GET RESPONSE
	pendSW  apdu.StatusWord
	chain   *chainState

	faultSW     *apdu.StatusWord
	faultMute   bool
	faultBadMAC bool

	stats Stats
}

// secEnv is the security environment of the current DF: the DH exchange,
// the SM session, the DAPP progress, the verified reference data and the MSE
// selections. Application SELECT, a new DH and reset clear it.
type secEnv struct {
	dh     *dhState
	sm     *sm.Session
	dstCA  bool    // MSE SET 81 B6 selected key 84 for PSO VERIFY CERTIFICATE
	ifd    *ifdKey // IFD public key from a verified CV certificate
	atIFD  bool    // MSE SET 81 A4 selected the IFD key for EXTERNAL AUTHENTICATE
	rndICC []byte  // last GET CHALLENGE
	chUsed bool    // the challenge was consumed by EXTERNAL AUTHENTICATE
	extOK  bool    // EXTERNAL AUTHENTICATE verified
	dapp   bool    // DAPP complete on this SM session
	pinOK  bool
	pukOK  bool
	intKey byte // key selected by MSE SET 41 A4 (81, 82, 83), 0 = none
}

type dhState struct {
	x          *big.Int
	yIFD, yICC []byte // as sent and as answered (256 bytes each)
}

type ifdKey struct {
	chr  []byte
	n, e *big.Int
	k    int // modulus length in bytes
}

type chainState struct {
	ins, p1, p2 byte
	sm          bool
	data        []byte
}

// maxChainData bounds the data a command chain may accumulate.
const maxChainData = 4096

// New builds a card from cfg. It fails for an unknown family, a malformed
// PIN or PUK, or an invalid holder.
func New(cfg Config) (*Card, error) {
	fam, ok := lookupFamily(cfg.Family)
	if !ok {
		return nil, fmt.Errorf("ciesim: unknown family %q", cfg.Family)
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	st := cfg.State
	if st == nil {
		now := time.Now
		if cfg.Now != nil {
			now = cfg.Now
		}
		var err error
		if st, err = NewState(rnd, now(), cfg.Holder); err != nil {
			return nil, err
		}
	}
	c := &Card{
		fam: fam, st: st, rand: rnd, log: cfg.Logger, latency: cfg.Latency,
		pin: []byte(DefaultPIN), puk: []byte(DefaultPUK),
		pinMax: DefaultPINTries, pukMax: DefaultPUKTries,
	}
	c.atr = append([]byte(nil), fam.atr...)
	if len(cfg.ATR) > 0 {
		c.atr = append([]byte(nil), cfg.ATR...)
	}
	if cfg.PIN != nil {
		c.pin = append([]byte(nil), cfg.PIN...)
	}
	if cfg.PUK != nil {
		c.puk = append([]byte(nil), cfg.PUK...)
	}
	for _, r := range [][]byte{c.pin, c.puk} {
		if len(r) != 8 || !allDigits(r) {
			return nil, errors.New("ciesim: PIN and PUK must be 8 digits")
		}
	}
	if cfg.PINTries > 0 {
		c.pinMax = cfg.PINTries
	}
	if cfg.PUKTries > 0 {
		c.pukMax = cfg.PUKTries
	}
	if c.pinMax > 15 || c.pukMax > 15 {
		return nil, errors.New("ciesim: retry counters above 15 do not fit 63Cx")
	}
	c.pinLeft, c.pukLeft = c.pinMax, c.pukMax

	c.holder = cfg.Holder.merge(st.Holder)
	if err := c.holder.validate(); err != nil {
		return nil, err
	}
	c.snicc = withIDServizi(st.SNICC, c.holder.IDServizi)
	c.cert = st.HolderCert
	if c.holder != st.Holder {
		var err error
		if c.cert, err = st.IssueHolderCert(c.holder); err != nil {
			return nil, err
		}
	}
	var err error
	if c.files, err = buildFiles(fam, st, c.holder, c.snicc, c.cert); err != nil {
		return nil, err
	}
	return c, nil
}

// ATR returns the answer to reset.
func (c *Card) ATR() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.atr...)
}

// String describes the card without its secrets.
func (c *Card) String() string { return "ciesim.Card{" + c.fam.id + "}" }

// GoString is String, so that %#v prints no PIN either.
func (c *Card) GoString() string { return c.String() }

// LogValue describes the card for log/slog without its secrets.
func (c *Card) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Format prints String for every verb (%d too, which fmt would otherwise
// print field by field, PIN and PUK included).
func (c *Card) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// Family returns the family id.
func (c *Card) Family() string { return c.fam.id }

// State returns the card's key material.
func (c *Card) State() *State { return c.st }

// Holder returns the holder data the card's files and certificate carry.
func (c *Card) Holder() Holder { return c.holder }

// Certificate returns the holder certificate stored in EF.CertCIE.
func (c *Card) Certificate() *x509.Certificate { return c.cert }

// SNICC returns the content of EF.SN.ICC.
func (c *Card) SNICC() [12]byte { return c.snicc }

// Stats returns the counters since New or the last ResetStats.
func (c *Card) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// ResetStats zeroes the counters.
func (c *Card) ResetStats() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats = Stats{}
}

// Tries returns the tries left for the PIN and the PUK.
func (c *Card) Tries() (pin, puk int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinLeft, c.pukLeft
}

// SetLatency sets the delay added to every APDU.
func (c *Card) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// Reset power-cycles the card: the SM session, the security status, the
// selected application and file, a pending response and a command chain are
// lost. The retry counters and the reference data persist.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

func (c *Card) resetLocked() {
	c.endSession()
	c.df, c.ef = dfRoot, nil
	c.pending, c.chain = nil, nil
}

// endSession closes the SM session and clears the security environment.
func (c *Card) endSession() {
	if c.s.sm != nil {
		c.s.sm.Close()
	}
	c.s = secEnv{}
}

// Fault is a failure injected into the card with Inject.
type Fault struct {
	kind faultKind
	sw   apdu.StatusWord
}

type faultKind int

const (
	faultBadMAC faultKind = iota + 1
	faultSW
	faultReset
	faultMute
)

var (
	// FaultBadMAC corrupts the MAC of the next protected response.
	FaultBadMAC = Fault{kind: faultBadMAC}
	// FaultReset clears the session and security state at once, as a reset
	// by another application would.
	FaultReset = Fault{kind: faultReset}
	// FaultMute makes the card answer the next APDU with nothing: in
	// process, Transmit returns an error wrapping apdu.ErrCardRemoved and
	// the card is power-cycled (as if pulled and re-inserted); through vpcd
	// the connection is closed and the card stays out until VPCD.Insert.
	FaultMute = Fault{kind: faultMute}
)

// FaultSW answers the next command with the bare status word sw, without
// executing it. Under SM the card then ends its session, as after any bare
// status word.
func FaultSW(sw apdu.StatusWord) Fault { return Fault{kind: faultSW, sw: sw} }

// String names the fault.
func (f Fault) String() string {
	switch f.kind {
	case faultBadMAC:
		return "bad MAC"
	case faultSW:
		return fmt.Sprintf("SW %04X", uint16(f.sw))
	case faultReset:
		return "reset"
	case faultMute:
		return "mute"
	}
	return "no fault"
}

// Inject arms a fault.
func (c *Card) Inject(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f.kind {
	case faultBadMAC:
		c.faultBadMAC = true
	case faultSW:
		sw := f.sw
		c.faultSW = &sw
	case faultReset:
		c.resetLocked()
	case faultMute:
		c.faultMute = true
	}
}

// Transmit processes one command APDU and returns the response APDU. It
// fails only when ctx ends during the configured latency or when a
// FaultMute is armed (apdu.ErrCardRemoved).
func (c *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	lat := c.latency
	c.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.APDUs++
	c.stats.BytesIn += len(cmd)
	if c.faultMute {
		c.faultMute = false
		c.resetLocked()
		c.logAPDU(cmd, nil)
		return nil, fmt.Errorf("ciesim: card mute: %w", apdu.ErrCardRemoved)
	}
	resp := c.process(cmd)
	c.stats.BytesOut += len(resp)
	c.logAPDU(cmd, resp)
	return resp, nil
}

func (c *Card) logAPDU(cmd, resp []byte) {
	if c.log == nil {
		return
	}
	var hdr string
	if pc, err := apdu.ParseCommand(cmd); err == nil {
		hdr = pc.String() // header and lengths only: data may hold a PIN
	} else {
		hdr = fmt.Sprintf("malformed (%d bytes)", len(cmd))
	}
	if resp == nil {
		c.log.Info("apdu", "cmd", hdr, "resp", "mute")
		return
	}
	sw := resp[len(resp)-2:]
	c.log.Info("apdu", "cmd", hdr, "resp_len", len(resp)-2, "sw", fmt.Sprintf("%02X%02X", sw[0], sw[1]))
}

// exchange is one command being processed.
type exchange struct {
	cmd        apdu.Command // plain command (chain assembled, SM removed)
	outerNe    int          // Ne of the command as received
	sm         bool         // received under secure messaging
	after      func()       // runs after the response is protected (SSC reset of DAPP)
	endSession bool         // end the SM session after protecting the response
}

func swBytes(sw apdu.StatusWord) []byte { return []byte{sw.SW1(), sw.SW2()} }

// Instruction bytes (ISO/IEC 7816-4 and cie-protocol.md §2–§8).
const (
	insSelect         = 0xA4
	insReadBinary     = 0xB0
	insGetResponse    = 0xC0
	insGetData        = 0xCB
	insMSESet         = 0x22
	insPSO            = 0x2A
	insGetChallenge   = 0x84
	insExternalAuth   = 0x82
	insInternalAuth   = 0x88
	insVerify         = 0x20
	insChangeRefData  = 0x24
	insResetRetryCntr = 0x2C

	claChain = 0x10
	claSM    = 0x0C
)

// process runs one raw command and returns the raw response.
func (c *Card) process(raw []byte) []byte {
	cmd, err := apdu.ParseCommand(raw)
	if err != nil {
		c.pending = nil
		return swBytes(apdu.SWWrongLength)
	}
	if c.faultSW != nil {
		sw := *c.faultSW
		c.faultSW = nil
		c.pending, c.chain = nil, nil
		if cmd.CLA&claSM == claSM {
			c.endSession()
		}
		return swBytes(sw)
	}
	if c.fam.foreign {
		return c.processForeign(cmd)
	}
	// GET RESPONSE is always plain; CLA 0C is the reference's quirk after 6100 (§5.4).
	if cmd.INS == insGetResponse && (cmd.CLA == 0x00 || cmd.CLA == claSM) {
		return c.getResponse(cmd)
	}
	c.pending = nil
	if cmd.CLA&^(claChain|claSM) != 0 || (cmd.CLA&claSM != 0 && cmd.CLA&claSM != claSM) {
		c.chain = nil
		return swBytes(apdu.SWCLANotSupported)
	}
	x := &exchange{cmd: cmd, outerNe: cmd.Ne, sm: cmd.CLA&claSM == claSM}
	if x.sm {
		if c.s.sm == nil {
			c.chain = nil
			return swBytes(apdu.SWSMDataObjectsIncorrect)
		}
		plain, err := c.s.sm.UnprotectCommand(cmd)
		if err != nil {
			// Bad MAC or malformed DOs: a bare 6988 that ends the session (§5.2).
			c.endSession()
			c.chain = nil
			return swBytes(apdu.SWSMDataObjectsIncorrect)
		}
		x.cmd = plain
	}
	// Command chaining (ISO/IEC 7816-4 §5.4.1; §5.5): collect the pieces,
	// answer each non-final one 9000 (protected under SM).
	if ch := c.chain; ch != nil && (ch.ins != x.cmd.INS || ch.p1 != x.cmd.P1 || ch.p2 != x.cmd.P2 || ch.sm != x.sm) {
		c.chain = nil
		return c.reply(x, nil, apdu.SWLastCommandOfChainExpct)
	}
	if x.cmd.CLA&claChain != 0 {
		if c.chain == nil {
			c.chain = &chainState{ins: x.cmd.INS, p1: x.cmd.P1, p2: x.cmd.P2, sm: x.sm}
		}
		c.chain.data = append(c.chain.data, x.cmd.Data...)
		if len(c.chain.data) > maxChainData {
			c.chain = nil
			return c.reply(x, nil, apdu.SWWrongLength)
		}
		return c.reply(x, nil, apdu.SWOK)
	}
	if c.chain != nil {
		x.cmd.Data = append(c.chain.data, x.cmd.Data...)
		c.chain = nil
	}
	data, sw := c.dispatch(x)
	return c.reply(x, data, sw)
}

// reply protects the answer under SM, applies the post-response actions and
// delivers it directly or through 61xx (architecture.md "Response delivery").
func (c *Card) reply(x *exchange, data []byte, sw apdu.StatusWord) []byte {
	ne := x.cmd.Ne
	if x.sm && c.s.sm != nil {
		pr, err := c.s.sm.ProtectResponse(apdu.Response{Data: data, SW: sw})
		if err != nil {
			c.endSession()
			return swBytes(apdu.SWNoPreciseDiagnosis)
		}
		data, sw, ne = pr.Data, pr.SW, x.outerNe
		if c.faultBadMAC {
			c.faultBadMAC = false
			data[len(data)-1] ^= 0x01 // last byte of DO8E
		}
	}
	if x.after != nil {
		x.after()
	}
	if x.endSession {
		c.endSession()
	}
	if len(data) > 0 && (ne == 0 || len(data) > ne) {
		c.pending, c.pendSW = data, sw
		return swBytes(moreData(len(data)))
	}
	return append(append([]byte(nil), data...), sw.SW1(), sw.SW2())
}

// moreData is 61xx with xx = min(n, 256) & FF.
func moreData(n int) apdu.StatusWord {
	return apdu.StatusWord(0x6100 | uint16(min(n, 256)&0xFF))
}

// getResponse serves the pending response in chunks of at most Ne bytes.
func (c *Card) getResponse(cmd apdu.Command) []byte {
	if c.pending == nil {
		return swBytes(apdu.SWConditionsNotSatisfied)
	}
	if cmd.P1 != 0 || cmd.P2 != 0 {
		c.pending = nil
		return swBytes(apdu.SWIncorrectP1P2)
	}
	if len(cmd.Data) != 0 {
		c.pending = nil
		return swBytes(apdu.SWWrongLength)
	}
	ne := cmd.Ne
	if ne == 0 {
		ne = apdu.MaxShortNe
	}
	n := min(ne, len(c.pending))
	out := append([]byte(nil), c.pending[:n]...)
	c.pending = c.pending[n:]
	if len(c.pending) > 0 {
		sw := moreData(len(c.pending))
		return append(out, sw.SW1(), sw.SW2())
	}
	c.pending = nil
	return append(out, c.pendSW.SW1(), c.pendSW.SW2())
}

// processForeign is the non-CIE card: no application of ours, no commands.
func (c *Card) processForeign(cmd apdu.Command) []byte {
	switch {
	case cmd.CLA&^claChain != 0:
		return swBytes(apdu.SWCLANotSupported)
	case cmd.INS == insSelect:
		return swBytes(apdu.SWFileNotFound)
	case cmd.INS == insGetResponse:
		return swBytes(apdu.SWConditionsNotSatisfied)
	}
	return swBytes(apdu.SWINSNotSupported)
}

// dispatch runs a plain command of the CIE.
func (c *Card) dispatch(x *exchange) ([]byte, apdu.StatusWord) {
	switch x.cmd.INS {
	case insSelect:
		return c.cmdSelect(x)
	case insReadBinary:
		return c.cmdReadBinary(x)
	case insGetData:
		return c.cmdGetData(x)
	case insMSESet:
		return c.cmdMSESet(x)
	case insPSO:
		return c.cmdVerifyCertificate(x)
	case insGetChallenge:
		return c.cmdGetChallenge(x)
	case insExternalAuth:
		return c.cmdExternalAuthenticate(x)
	case insInternalAuth:
		return c.cmdInternalAuthenticate(x)
	case insVerify:
		return c.cmdVerify(x)
	case insChangeRefData:
		return c.cmdChangeReferenceData(x)
	case insResetRetryCntr:
		return c.cmdResetRetryCounter(x)
	}
	return nil, apdu.SWINSNotSupported
}
