package tray

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/sign"
)

// Window names of the signature windows.
const (
	WinSign   = "sign"
	WinVerify = "verify"
)

// signMode is what the sign window makes of the chosen file.
type signMode int

const (
	modeCAdES signMode = iota // any file → .p7m with the content attached
	modePAdES                 // a PDF → a signed PDF
	modeAdd                   // a .p7m/.p7s → one more (parallel) signature
)

// Size of a visible signature in PDF points (about 7 × 2.1 cm).
const sigWidthPt, sigHeightPt = 200.0, 60.0

// signView signs a file with the card: CAdES for any file, PAdES for a
// PDF with an optional visible signature placed on a page preview, or one
// more signature on a file already signed. The file comes from the path
// field, the file picker or a drop on the window. All the cryptography is
// package sign's; the card is used through cie.Card.Signer.
type signView struct {
	u         *UI
	t         *task
	in, out   *escEntry
	pin       *escEntry
	browse    *escButton
	submit    *escButton
	close     *escButton
	format    *widget.RadioGroup
	visible   *widget.Check
	page      *widget.Select
	corner    *widget.RadioGroup
	preview   *pagePreview
	pdfBox    *fyne.Container
	note      *widget.Label
	state     *widget.Label
	warn      *widget.Label
	mode      signMode
	pages     int
	pageSize  [2]float64   // points, of the chosen page
	pageSizes [][2]float64 // points, of every page
	place     placement
	hint      *widget.Label
	loaded    bool  // the PIN state was read once
	pdfErr    error // why the file cannot be signed as PAdES
}

func newSignView(u *UI) view {
	v := &signView{u: u}
	v.t = newTask(u, WinSign)
	v.t.onBusy = func(busy bool) {
		if busy {
			v.submit.Disable()
		} else {
			v.submit.Enable()
		}
	}
	return v
}

func (v *signView) title() string         { return v.u.T("sign.title") + " — " + v.u.T("app.name") }
func (v *signView) minSize() fyne.Size    { return fyne.NewSize(640, 10) }
func (v *signView) focus() fyne.Focusable { return v.in }
func (v *signView) closed()               { v.t.stopNow() }

// dropped takes the first file dropped on the window.
func (v *signView) dropped(uris []fyne.URI) {
	if len(uris) > 0 {
		v.in.SetText(uris[0].Path())
		v.choose(uris[0].Path())
	}
}

func (v *signView) formats() []string {
	return []string{v.u.T("sign.format_cades"), v.u.T("sign.format_pades")}
}

func (v *signView) corners() []string {
	u := v.u
	return []string{u.T("sign.corner_br"), u.T("sign.corner_bl"), u.T("sign.corner_tr"), u.T("sign.corner_tl")}
}

func (v *signView) build() fyne.CanvasObject {
	u := v.u
	esc := func() { u.closeWindow(WinSign) }
	prevIn, prevOut := "", ""
	if v.in != nil {
		prevIn, prevOut = v.in.Text, v.out.Text
	}
	v.in = newTextEntry(u.T("sign.file_hint"), esc)
	v.in.OnSubmitted = func(s string) { v.choose(s); u.focusIn(WinSign, v.out) }
	v.browse = newButton(u.T("common.browse"), theme.FolderOpenIcon(), v.askFile, esc)
	v.out = newTextEntry("", esc)
	v.out.OnSubmitted = func(string) { u.focusIn(WinSign, v.pin) }
	v.pin = newPINField(u.T("pin.placeholder"), esc)
	v.pin.OnSubmitted = func(string) { v.doSign() }
	v.format = widget.NewRadioGroup(v.formats(), func(string) { v.modeChanged() })
	v.format.Horizontal = true
	v.format.Required = true
	v.visible = widget.NewCheck(u.T("sign.visible"), func(bool) { v.showPDF() })
	v.page = widget.NewSelect(nil, func(s string) { v.pageChanged(s) })
	v.corner = widget.NewRadioGroup(v.corners(), func(s string) {
		for i, c := range v.corners() {
			if c == s {
				v.preview.set(presetPlacement(i, v.place.W, v.place.H))
			}
		}
	})
	v.preview = newPagePreview(u.T("sign.preview_label"), esc)
	v.preview.onChange = func(p placement) { v.place = p }
	v.note = para("")
	v.note.Hide()
	v.state = widget.NewLabel("")
	v.warn = para(u.T("pin.last_try_warning"))
	v.warn.Importance = widget.WarningImportance
	v.warn.Hide()
	v.submit = newButton(u.T("sign.submit"), theme.ConfirmIcon(), v.doSign, esc)
	v.submit.Importance = widget.HighImportance
	v.close = newButton(u.T("common.close"), nil, esc, esc)

	v.hint = para(u.T("sign.place_hint"))
	v.pdfBox = container.NewBorder(nil, nil, nil, v.preview,
		container.NewVBox(v.visible, labelled(fieldLabel(u.T("sign.page")), v.page), v.corner, v.hint))
	content := container.NewVBox(
		heading(u.T("sign.heading")),
		para(u.T("sign.intro")),
		labelled(
			fieldLabel(u.T("sign.file")), container.NewBorder(nil, nil, nil, v.browse, v.in),
			fieldLabel(u.T("sign.format")), v.format,
		),
		v.note,
		v.pdfBox,
		labelled(
			fieldLabel(u.T("sign.output")), v.out,
			fieldLabel("PIN"), v.state,
			widget.NewLabel(""), v.pin,
		),
		para(u.T("pinentry.all_digits")),
		v.warn,
		v.t.widgets(),
		buttons(v.close, v.submit),
	)
	v.showState()
	if !v.loaded {
		v.loaded = true
		v.t.start(u.T("common.reading_card"), func(ctx context.Context) error {
			return u.withCard(ctx, func(context.Context, *cie.Card) error { return nil })
		}, func(err error) {
			v.showState()
			if err != nil {
				v.t.result(false, u.problemText(err))
				return
			}
			u.event(Event{Kind: "ready", Window: WinSign, Message: v.state.Text})
		})
	}
	if prevIn != "" {
		v.in.SetText(prevIn)
		v.choose(prevIn)
		v.out.SetText(prevOut)
	} else {
		v.setMode(modeCAdES, false)
	}
	return container.NewPadded(content)
}

// showState shows the PIN's tries from the tray status.
func (v *signView) showState() {
	st := v.u.Status()
	if st.Presence != CIEPresent || !st.TriesKnown {
		v.state.SetText(v.u.T("sign.pin_unknown"))
		v.warn.Hide()
		return
	}
	v.state.SetText(v.u.pinStateLine(st.PIN, cie.PIN))
	v.warn.Hidden = !(st.PIN.Remaining == 1 && !st.PIN.Blocked)
	v.warn.Refresh()
}

func (v *signView) askFile() {
	w := v.u.window(WinSign)
	if w == nil {
		return
	}
	dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil || rc == nil {
			return
		}
		rc.Close()
		v.in.SetText(rc.URI().Path())
		v.choose(rc.URI().Path())
	}, w).Show()
}

// choose looks at the file: a PDF can be signed as PAdES, a signed file
// gets one more signature, anything else is signed as CAdES.
func (v *signView) choose(path string) {
	path = strings.TrimSpace(path)
	v.pdfErr, v.pages = nil, 0
	if path == "" {
		return
	}
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".p7m") || strings.HasSuffix(lower, ".p7s"):
		v.setMode(modeAdd, true)
		v.out.SetText(strings.TrimSuffix(path, filepath.Ext(path)) + "-" + v.u.T("sign.suffix_cosigned") + filepath.Ext(path))
		return
	case strings.HasSuffix(lower, ".pdf"):
		if err := v.readPDF(path); err != nil {
			v.pdfErr = err
			v.setMode(modeCAdES, true)
		} else {
			v.setMode(modePAdES, true)
		}
	default:
		v.setMode(modeCAdES, true)
	}
	v.defaultOutput()
}

func (v *signView) defaultOutput() {
	path := strings.TrimSpace(v.in.Text)
	if path == "" {
		return
	}
	if v.mode == modePAdES {
		ext := filepath.Ext(path)
		v.out.SetText(strings.TrimSuffix(path, ext) + "_" + v.u.T("sign.suffix_signed") + ext)
	} else {
		v.out.SetText(path + ".p7m")
	}
}

// readPDF opens the PDF to learn its pages; it fails for PDFs that cannot
// be signed (encrypted, damaged, certified), so the citizen learns it
// before typing the PIN.
func (v *signView) readPDF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	d, err := sign.OpenPDF(f, st.Size())
	if err != nil {
		return err
	}
	v.pages = d.NumPages()
	opts := make([]string, v.pages)
	for i := range opts {
		opts[i] = strconv.Itoa(i + 1)
	}
	v.page.Options = opts
	v.page.Selected = ""
	sizes := make([][2]float64, v.pages)
	for i := range sizes {
		w, h, err := d.PageSize(i + 1)
		if err != nil {
			return err
		}
		sizes[i] = [2]float64{w, h}
	}
	v.pageSizes = sizes
	v.page.SetSelected(opts[len(opts)-1]) // the last page, where signatures usually go
	return nil
}

func (v *signView) pageChanged(s string) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > len(v.pageSizes) {
		return
	}
	v.pageSize = v.pageSizes[n-1]
	if v.pageSize[0] <= 0 || v.pageSize[1] <= 0 {
		return
	}
	v.preview.aspect = v.pageSize[0] / v.pageSize[1]
	w := min(sigWidthPt/v.pageSize[0], 0.9)
	h := min(sigHeightPt/v.pageSize[1], 0.5)
	corner := 0
	for i, c := range v.corners() {
		if c == v.corner.Selected {
			corner = i
		}
	}
	v.corner.Selected = v.corners()[corner]
	v.corner.Refresh()
	v.preview.set(presetPlacement(corner, w, h))
}

// setMode selects the format; the radio is enabled only when there is a
// choice (a PDF that can be signed either way).
func (v *signView) setMode(m signMode, explain bool) {
	v.mode = m
	f := v.formats()
	switch m {
	case modePAdES:
		v.format.Selected = f[1]
		v.format.Enable()
	case modeCAdES:
		v.format.Selected = f[0]
		if v.pages > 0 {
			v.format.Enable()
		} else {
			v.format.Disable()
		}
	case modeAdd:
		v.format.Selected = f[0]
		v.format.Disable()
	}
	v.format.Refresh()
	v.note.Hide()
	if explain {
		switch {
		case m == modeAdd:
			v.note.SetText(v.u.T("sign.add_note"))
			v.note.Show()
		case v.pdfErr != nil:
			v.note.SetText(v.u.T("sign.pdf_unusable", map[string]any{"Error": strings.TrimPrefix(v.pdfErr.Error(), "sign: ")}))
			v.note.Show()
		}
	}
	v.showPDF()
}

func (v *signView) modeChanged() {
	if v.format.Selected == v.formats()[1] && v.pages > 0 {
		v.mode = modePAdES
	} else if v.mode != modeAdd {
		v.mode = modeCAdES
	}
	v.defaultOutput()
	v.showPDF()
}

// showPDF shows the placement controls for a PAdES signature.
func (v *signView) showPDF() {
	if v.mode != modePAdES {
		v.pdfBox.Hide()
		return
	}
	v.pdfBox.Show()
	for _, w := range []fyne.Disableable{v.page, v.corner} {
		if v.visible.Checked {
			w.Enable()
		} else {
			w.Disable()
		}
	}
	if v.visible.Checked {
		v.preview.Show()
		v.hint.Show()
	} else {
		v.preview.Hide()
		v.hint.Hide()
	}
}

// appearance is the visible signature in PDF points from the page's
// lower-left corner, or nil for an invisible one.
func (v *signView) appearance() *sign.Appearance {
	if v.mode != modePAdES || !v.visible.Checked {
		return nil
	}
	n, err := strconv.Atoi(v.page.Selected)
	if err != nil {
		n = v.pages
	}
	pw, ph := v.pageSize[0], v.pageSize[1]
	p := v.place
	return &sign.Appearance{Page: n, Rect: sign.Rect{X: p.X * pw, Y: (1 - p.Y - p.H) * ph, W: p.W * pw, H: p.H * ph}}
}

func (v *signView) doSign() {
	u := v.u
	if v.t.busy() {
		return
	}
	in, out := strings.TrimSpace(v.in.Text), strings.TrimSpace(v.out.Text)
	pin := secret(v.pin)
	fail := func(msg string, f fyne.Focusable) {
		clear(pin)
		v.t.result(false, msg)
		u.focusIn(WinSign, f)
	}
	if in == "" {
		fail(u.T("sign.no_file"), v.in)
		return
	}
	if _, err := os.Stat(in); err != nil {
		fail(u.T("sign.cannot_read", map[string]any{"Path": in}), v.in)
		return
	}
	if out == "" || out == in {
		fail(u.T("sign.bad_output"), v.out)
		return
	}
	if _, err := os.Stat(out); err == nil {
		fail(u.T("sign.output_exists", map[string]any{"Path": out}), v.out)
		return
	}
	if cie.ValidatePIN(pin) != nil {
		fail(u.T("pinentry.need_8_digits")+" "+u.T("common.nothing_sent"), v.pin)
		return
	}
	mode, look := v.mode, v.appearance()
	v.t.start(u.T("sign.progress"), func(ctx context.Context) error {
		defer clear(pin)
		return u.withCard(ctx, func(ctx context.Context, c *cie.Card) error {
			if err := c.VerifyPIN(ctx, pin); err != nil {
				return err
			}
			cert, err := c.Certificate(ctx)
			if err != nil {
				return err
			}
			u.rememberCertificate(ctx, c, cert)
			opts := sign.Options{Signer: c.Signer(cert), Chain: []*x509.Certificate{cert}}
			return writeAtomically(out, func(w io.Writer) error {
				return signFile(ctx, w, in, mode, opts, look)
			})
		})
	}, func(err error) {
		v.showState()
		if err != nil {
			v.t.result(false, u.signProblem(err))
			u.focusIn(WinSign, v.pin)
			return
		}
		v.t.result(true, u.T("sign.done", map[string]any{"Path": out}))
		u.focusIn(WinSign, v.close)
	})
}

// signFile writes the signature of the file in to w.
func signFile(ctx context.Context, w io.Writer, in string, mode signMode, opts sign.Options, look *sign.Appearance) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	switch mode {
	case modePAdES:
		d, err := sign.OpenPDF(f, st.Size())
		if err != nil {
			return err
		}
		return d.Sign(ctx, w, sign.PAdESOptions{Options: opts, Visible: look})
	case modeAdd:
		return sign.AddCAdES(ctx, w, f, st.Size(), nil, sign.AddOptions{Options: opts})
	}
	return sign.SignCAdES(ctx, w, f, st.Size(), sign.CAdESOptions{Options: opts})
}

// writeAtomically writes path through a temporary file in its directory,
// renamed into place only when write succeeded: a failed or interrupted
// signature leaves no half-written file.
func writeAtomically(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// rememberCertificate learns the holder's name for the tray and, when a
// certificate cache is configured, stores the card's record with the
// certificate, as the PKCS#11 module does after a login (the next browser
// start then shows the card without an APDU).
func (u *UI) rememberCertificate(ctx context.Context, c *cie.Card, cert *x509.Certificate) {
	u.learnHolder(c.PAN(), HolderName(cie.HolderFromCertificate(cert)))
	if u.cfg.CertCache == nil {
		return
	}
	if err := u.cfg.CertCache.StoreCard(c, cert); err != nil {
		u.log.Info("storing the card record", "err", err)
	}
}

// signProblem is problemText, with the errors of files and of package sign.
func (u *UI) signProblem(err error) string {
	var pe *os.PathError
	switch {
	case errors.Is(err, sign.ErrCertifiedPDF):
		return u.T("sign.certified_pdf")
	case errors.As(err, &pe):
		return u.T("sign.file_error", map[string]any{"Path": pe.Path, "Error": pe.Err.Error()})
	}
	return u.problemText(err)
}
