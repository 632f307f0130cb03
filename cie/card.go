package cie

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
)

// Options configures a Card. The zero value (or nil) uses crypto/rand,
// time.Now and no logging.
type Options struct {
	// Rand is the source of the DH private exponent and of the DAPP random
	// values; nil means crypto/rand.Reader. Tests inject a deterministic
	// reader so that a session replays byte for byte.
	Rand io.Reader
	// Now is the clock (used by VerifySOD's report); nil means time.Now.
	Now func() time.Time
	// Logger receives debug records of the protocol steps (never PINs, keys
	// or command data); nil discards them.
	Logger *slog.Logger
}

// Card is an opened CIE. Its methods are safe for concurrent use: they are
// serialised, and each runs inside one transaction of the transport.
type Card struct {
	mu   sync.Mutex
	raw  apdu.Transport // the caller's transport (transactions)
	gr   apdu.Transport // raw wrapped with apdu.NewGetResponse
	rand io.Reader
	now  func() time.Time
	log  *slog.Logger

	atr       []byte
	family    Family
	sel       SelectMode // the root selection that works on this card
	snICC     []byte     // EF.SN.ICC, 12 bytes
	idServizi []byte     // EF.ID_Servizi, 12 bytes

	// What the host believes the card's state is.
	cur    location      // selected application
	smt    *sm.Transport // nil without a secure-messaging session
	pinOK  bool          // PIN verified in the current SM session
	seKey  byte          // key selected by MSE SET 41 A4 in this session, 0 if unknown
	closed bool

	// Public data cached for the life of the Card (send nothing twice).
	dhStyle   DHStyle // the DH template that worked
	group     *dhGroup
	ca        *caKey
	cvCert    []byte // the CV certificate signed for ca
	chip      *rsaFile
	servizi   *rsaFile
	efDH      []byte
	noDHStyle bool   // set once both templates failed (never retry blindly)
	caRaw     []byte // the GET DATA answer ca was parsed from (for Profile)

	// presumed: the identity and public data come from a Profile
	// (OpenProfile) and the card has not proven yet that it is that card.
	presumed bool
}

// location is the application the card has selected.
type location int

const (
	locUnknown location = iota // after a reset, or before Open
	locRoot                    // IAS application or MF
	locCIE                     // DF_CIE
)

// AIDs and file identifiers (§2, §3.1).
var (
	aidIAS = []byte{0xA0, 0x00, 0x00, 0x00, 0x30, 0x80, 0x00, 0x00, 0x00, 0x09, 0x81, 0x60, 0x01}
	aidCIE = []byte{0xA0, 0x00, 0x00, 0x00, 0x00, 0x39}
)

const (
	fidSNICC      = 0xD003 // EF.SN.ICC, IAS root
	fidDH         = 0xD004 // EF.DH, IAS root
	fidATR        = 0x2F01 // EF.ATR, IAS root / MF
	fidIDServizi  = 0x1001 // EF.ID_Servizi, DF_CIE
	fidSeriale    = 0x1002 // EF.Seriale (document number), DF_CIE, SM
	fidCertCIE    = 0x1003 // EF.CertCIE, DF_CIE, SM + PIN
	fidIntKpub    = 0x1004 // EF.Int.Kpub (chip key 0x82), DF_CIE
	fidServiziKpb = 0x1005 // EF.Servizi_Int.Kpub (key 0x83), DF_CIE
	fidSOD        = 0x1006 // EF.SOD, DF_CIE

	// Short EF identifiers in DF_CIE (§3.1).
	sfiIDServizi = 0x01
	sfiIntKpub   = 0x04
	sfiServizi   = 0x05

	snICCSize     = 12
	idServiziSize = 12
	serialeSize   = 9
)

// Instructions (ISO/IEC 7816-4, §2–§8).
const (
	insSelect                = 0xA4
	insReadBinary            = 0xB0
	insGetData               = 0xCB
	insMSESet                = 0x22
	insPSOVerifyCertificate  = 0x2A
	insGetChallenge          = 0x84
	insExternalAuthenticate  = 0x82
	insInternalAuthenticate  = 0x88
	p1SelectByName           = 0x04
	p1SelectEF               = 0x02
	p1ReadBinarySFI          = 0x80 // READ BINARY: P1 = 80 | SFI, offset in P2
	p2SelectNoResponse       = 0x0C
	plainChunk               = 256          // READ BINARY Le 00 in plain
	smChunk                  = sm.ChunkSize // READ BINARY Le E7 under SM (§5.5)
	maxFileOffset            = 0x7FFF       // READ BINARY offsets are 15-bit (§3.4)
	plainChainSize           = 255          // plain command chaining (§4 step 3)
	servizi83MaxChallengeLen = 245          // k − 11 for a 2048-bit key
)

// Open identifies the card behind t, selects its applications and reads
// EF.SN.ICC (D003) and EF.ID_Servizi (1001) in plain. atr is the card's ATR
// as the reader reports it; it is matched against Families in order. When
// it matches none (or the family's selection fails, e.g. a reader that
// strips the historical bytes) the card is probed as in §1.3: SELECT IAS
// AID, else SELECT MF, then EF.ATR. SELECT CIE must succeed in every case.
// A card that is not a CIE gives an *UnsupportedCardError carrying atr.
// t is wrapped with apdu.NewGetResponse; it stays owned by the caller.
func Open(ctx context.Context, t apdu.Transport, atr []byte, opts *Options) (*Card, error) {
	if t == nil {
		return nil, errors.New("cie: opening card: nil transport")
	}
	c, err := newCard(t, atr, opts)
	if err != nil {
		return nil, err
	}
	err = c.run(ctx, "opening card", true, func(ctx context.Context, _ *operation) error {
		return c.identify(ctx)
	})
	if err != nil {
		var ue *UnsupportedCardError
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("cie: %w", ue)
		}
		return nil, err
	}
	return c, nil
}

// newCard returns a Card on t with opts applied, before any I/O.
func newCard(t apdu.Transport, atr []byte, opts *Options) (*Card, error) {
	c := &Card{raw: t, gr: apdu.NewGetResponse(t), atr: slices.Clone(atr), rand: rand.Reader, now: time.Now}
	if opts != nil {
		if opts.Rand != nil {
			c.rand = opts.Rand
		}
		if opts.Now != nil {
			c.now = opts.Now
		}
		c.log = opts.Logger
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// identify runs the identification sequence of Open.
func (c *Card) identify(ctx context.Context) error {
	c.forget()
	unsupported := func(cause error) error {
		return &UnsupportedCardError{ATR: slices.Clone(c.atr), err: cause}
	}
	fam, known := FamilyByATR(c.atr)
	selected := false
	if known {
		c.family, c.sel = fam, fam.Select
		err := c.selectRoot(ctx)
		switch {
		case err == nil:
			selected = true
		case isStatus(err):
			c.log.DebugContext(ctx, "cie: selection of the ATR's family failed, probing", "family", fam.ID, "err", err)
		default:
			return err
		}
	}
	if !selected {
		var err error
		if fam, err = c.probe(ctx); err != nil {
			if isStatus(err) || errors.Is(err, errNotCIE) {
				return unsupported(err)
			}
			return err
		}
		c.family = fam
	}
	c.log.DebugContext(ctx, "cie: chip family", "family", c.family.ID, "select", c.sel)

	sn, err := c.readEF(ctx, fidSNICC, snICCSize)
	if err != nil {
		if isStatus(err) {
			return unsupported(err)
		}
		return fmt.Errorf("reading EF.SN.ICC: %w", err)
	}
	if err := c.selectCIE(ctx); err != nil {
		if isStatus(err) {
			return unsupported(err)
		}
		return err
	}
	id, err := c.readEFShort(ctx, fidIDServizi, sfiIDServizi, idServiziSize)
	if err != nil {
		if isStatus(err) {
			return unsupported(err)
		}
		return fmt.Errorf("reading EF.ID_Servizi: %w", err)
	}
	c.snICC, c.idServizi = sn, id
	if string(id) != c.panString() {
		// §13 item 13: the reference stores the pairing cache under one and
		// looks it up under the other; they are meant to coincide.
		c.log.WarnContext(ctx, "cie: EF.ID_Servizi differs from hex(SN.ICC[5:11])")
	}
	return nil
}

// errNotCIE: the probe found no CIE signature in EF.ATR.
var errNotCIE = errors.New("EF.ATR matches no CIE chip")

// probe identifies the family without a usable ATR (§1.3).
func (c *Card) probe(ctx context.Context) (Family, error) {
	c.sel = SelectIAS
	err := c.selectRoot(ctx)
	if isStatus(err) {
		c.sel = SelectMF
		err = c.selectRoot(ctx)
	}
	if err != nil {
		return Family{}, err
	}
	content, err := c.readEF(ctx, fidATR, readToEOF)
	if err != nil {
		return Family{}, fmt.Errorf("reading EF.ATR: %w", err)
	}
	fam, ok := familyByEFATR(content)
	if !ok {
		return Family{}, errNotCIE
	}
	c.log.DebugContext(ctx, "cie: family found by EF.ATR", "family", fam.ID, "select", c.sel)
	return fam, nil
}

// Family returns the chip family found by Open.
func (c *Card) Family() Family {
	f := c.family
	f.ATR, f.ATRMask = slices.Clone(f.ATR), slices.Clone(f.ATRMask)
	return f
}

// ATR returns the ATR given to Open.
func (c *Card) ATR() []byte { return slices.Clone(c.atr) }

// SerialICC returns EF.SN.ICC (12 bytes), the chip serial number.
func (c *Card) SerialICC() []byte { return slices.Clone(c.snICC) }

// PAN returns hex(SN.ICC[5:11]) in upper case, the 12-character identifier
// the reference uses for the card (§3.1).
func (c *Card) PAN() string { return c.panString() }

func (c *Card) panString() string {
	if len(c.snICC) < 11 {
		return ""
	}
	return strings.ToUpper(hex.EncodeToString(c.snICC[5:11]))
}

// IDServizi returns EF.ID_Servizi, the "Numero Identificativo Servizi" (12
// digits), readable without any condition.
func (c *Card) IDServizi() string { return string(c.idServizi) }

// Logout ends the secure-messaging session and forgets the PIN
// verification: the keys are zeroed and the next operation that needs
// secure messaging selects DF_CIE again (which clears the card's security
// status) and re-runs DH and DAPP. Nothing is sent now.
func (c *Card) Logout() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropSession("logout")
	c.cur = locUnknown
}

// Close logs out and makes every later call fail with ErrClosed. The
// transport stays open: it belongs to the caller.
func (c *Card) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropSession("close")
	c.cur = locUnknown
	c.closed = true
	return nil
}

// operation is the state of one public call.
type operation struct {
	committed bool // a command that must never be repeated was sent
}

// commit marks the point after which the operation is not retried.
func (op *operation) commit() { op.committed = true }

// run executes fn under the card mutex and one transaction. When fn fails
// because the card was reset or the secure-messaging session broke
// (MAC, malformed answer, SM status words 6987/6988), fn runs once more if
// the operation is an idempotent read, or if it had not yet sent its
// non-repeatable command. Errors get the "cie: <what>: " prefix.
func (c *Card) run(ctx context.Context, what string, idempotent bool, fn func(context.Context, *operation) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cie: %s: %w", what, ErrClosed)
	}
	if err := c.begin(ctx); err != nil {
		return fmt.Errorf("cie: %s: %w", what, err)
	}
	defer c.end(ctx)
	op := &operation{}
	err := fn(ctx, op)
	if err != nil && recoverable(err) && (idempotent || !op.committed) {
		c.log.DebugContext(ctx, "cie: retrying once", "op", what, "err", err)
		op = &operation{}
		err = fn(ctx, op)
	}
	if err != nil {
		return fmt.Errorf("cie: %s: %w", what, err)
	}
	return nil
}

// recoverable reports whether err left the card in a state a new session
// repairs: a reset, or a broken secure-messaging session.
func recoverable(err error) bool {
	if errors.Is(err, apdu.ErrCardReset) || errors.Is(err, sm.ErrMAC) || errors.Is(err, sm.ErrMalformed) ||
		errors.Is(err, sm.ErrSessionClosed) {
		return true
	}
	var sw apdu.StatusWord
	return bareStatus(err) && errors.As(err, &sw) &&
		(sw == apdu.SWSMDataObjectsMissing || sw == apdu.SWSMDataObjectsIncorrect)
}

// begin starts a transaction when the transport supports them. A reset
// reported at this point (another process reset the card) only loses the
// card state; the transaction is tried once more.
func (c *Card) begin(ctx context.Context) error {
	tr, ok := c.raw.(apdu.Transactor)
	if !ok {
		return nil
	}
	err := tr.BeginTransaction(ctx)
	if errors.Is(err, apdu.ErrCardReset) {
		c.lost("reset before the transaction")
		err = tr.BeginTransaction(ctx)
	}
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	return nil
}

func (c *Card) end(ctx context.Context) {
	tr, ok := c.raw.(apdu.Transactor)
	if !ok {
		return
	}
	if err := tr.EndTransaction(context.WithoutCancel(ctx)); err != nil {
		c.log.DebugContext(ctx, "cie: ending transaction", "err", err)
		if errors.Is(err, apdu.ErrCardReset) {
			c.lost("reset at the end of the transaction")
		}
	}
}

// forget drops every belief about the card's state.
func (c *Card) forget() {
	c.dropSession("")
	c.cur = locUnknown
}

// lost records that the card lost its state (reset, removal).
func (c *Card) lost(why string) {
	c.log.Debug("cie: card state lost", "why", why)
	c.forget()
}

// dropSession zeroes the SM keys and forgets the PIN verification.
func (c *Card) dropSession(why string) {
	if c.smt != nil {
		if why != "" {
			c.log.Debug("cie: secure messaging session ended", "why", why)
		}
		c.smt.Session().Close()
		c.smt = nil
	}
	c.pinOK = false
	c.seKey = 0
}

// transportError updates the state after an error of the raw transport.
func (c *Card) transportError(err error) {
	if errors.Is(err, apdu.ErrCardReset) || errors.Is(err, apdu.ErrCardRemoved) || errors.Is(err, apdu.ErrNoCard) {
		c.lost(err.Error())
	}
}

// plain sends cmd without secure messaging (GET RESPONSE resolved).
func (c *Card) plain(ctx context.Context, cmd apdu.Command) (apdu.Response, error) {
	if err := ctx.Err(); err != nil {
		return apdu.Response{}, err
	}
	r, err := apdu.Exchange(ctx, c.gr, cmd)
	if err != nil {
		c.transportError(err)
		return apdu.Response{}, err
	}
	return r, nil
}

// secure sends cmd under the current SM session. On a bare status word the
// response (its SW) is returned with the error; any error ends the session.
func (c *Card) secure(ctx context.Context, cmd apdu.Command) (apdu.Response, error) {
	if c.smt == nil {
		return apdu.Response{}, sm.ErrSessionClosed
	}
	if err := ctx.Err(); err != nil {
		return apdu.Response{}, err
	}
	b, err := cmd.Bytes()
	if err != nil {
		return apdu.Response{}, err
	}
	defer clear(b) // it may hold a PIN
	rb, err := c.smt.Transmit(ctx, b)
	if err != nil {
		// The card's state is unknown now (it may have been reset behind
		// the reader's back): the next session starts with SELECT CIE.
		c.dropSession(err.Error())
		c.cur = locUnknown
		c.transportError(err)
		var r apdu.Response
		if bareStatus(err) && rb != nil {
			r, _ = apdu.ParseResponse(rb)
		}
		return r, err
	}
	return apdu.ParseResponse(rb)
}

// exchange sends cmd under SM when a session is up, in plain otherwise:
// files readable in plain are read under SM too while a session lives, so
// that no plain command interrupts it.
func (c *Card) exchange(ctx context.Context, cmd apdu.Command) (apdu.Response, error) {
	if c.smt != nil {
		return c.secure(ctx, cmd)
	}
	return c.plain(ctx, cmd)
}

// chunk is the READ BINARY size for the current channel.
func (c *Card) chunk() int {
	if c.smt != nil {
		return smChunk
	}
	return plainChunk
}

// isStatus reports whether err is a card's refusal (a status word), as
// opposed to a transport or protocol failure.
func isStatus(err error) bool {
	var sw apdu.StatusWord
	return errors.As(err, &sw)
}

// checkSW turns a non-9000 answer into an error.
func checkSW(r apdu.Response, what string) error {
	if r.SW != apdu.SWOK {
		return fmt.Errorf("%s: %w", what, r.SW)
	}
	return nil
}

// selectRoot selects the IAS application or the MF (§2). Any application
// SELECT ends the SM session and the card's security status.
func (c *Card) selectRoot(ctx context.Context) error {
	cmd := apdu.Command{INS: insSelect, P1: p1SelectByName, P2: p2SelectNoResponse, Data: aidIAS}
	what := "selecting the IAS application"
	if c.sel == SelectMF {
		cmd, what = apdu.Command{INS: insSelect}, "selecting the MF"
	}
	c.dropSession("application select")
	c.cur = locUnknown
	r, err := c.plain(ctx, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := checkSW(r, what); err != nil {
		return err
	}
	c.cur = locRoot
	return nil
}

// selectCIE selects DF_CIE (§2).
func (c *Card) selectCIE(ctx context.Context) error {
	const what = "selecting the CIE application"
	c.dropSession("application select")
	c.cur = locUnknown
	r, err := c.plain(ctx, apdu.Command{INS: insSelect, P1: p1SelectByName, P2: p2SelectNoResponse, Data: aidCIE})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := checkSW(r, what); err != nil {
		return err
	}
	c.cur = locCIE
	return nil
}

// inCIE makes sure DF_CIE is selected, without disturbing a live session.
func (c *Card) inCIE(ctx context.Context) error {
	if c.cur == locCIE {
		return nil
	}
	return c.selectCIE(ctx)
}

// rsaFile is a parsed EF.Int.Kpub / EF.Servizi_Int.Kpub: the DER as stored
// (trimmed to its outer length, for the SOD hash) and the key.
type rsaFile struct {
	der []byte
	key *rsa.PublicKey
}
