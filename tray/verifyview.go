package tray

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/sign"
)

// verifyView verifies a signed file (.p7m, .p7s with its original, or a
// signed PDF) with package sign and shows, for each signature, the verdict
// and the signer in words, and the checks behind them. The content of a
// .p7m can be extracted.
type verifyView struct {
	u       *UI
	t       *task
	in      *escEntry
	data    *escEntry
	dataRow *fyne.Container
	online  *widget.Check
	submit  *escButton
	extract *escButton
	close   *escButton
	report  *fyne.Container
	rep     *sign.Report
}

func newVerifyView(u *UI) view {
	v := &verifyView{u: u}
	v.t = newTask(u, WinVerify)
	v.t.onBusy = func(busy bool) {
		if busy {
			v.submit.Disable()
		} else {
			v.submit.Enable()
		}
	}
	return v
}

func (v *verifyView) title() string         { return v.u.T("verify.title") + " — " + v.u.T("app.name") }
func (v *verifyView) minSize() fyne.Size    { return fyne.NewSize(680, 560) }
func (v *verifyView) focus() fyne.Focusable { return v.in }
func (v *verifyView) closed()               { v.t.stopNow() }

func (v *verifyView) dropped(uris []fyne.URI) {
	if len(uris) > 0 {
		v.in.SetText(uris[0].Path())
		v.fileChanged()
	}
}

func (v *verifyView) build() fyne.CanvasObject {
	u := v.u
	esc := func() { u.closeWindow(WinVerify) }
	prevIn, prevData := "", ""
	if v.in != nil {
		prevIn, prevData = v.in.Text, v.data.Text
	}
	v.in = newTextEntry(u.T("verify.file_hint"), esc)
	v.in.OnChanged = func(string) { v.fileChanged() }
	v.in.OnSubmitted = func(string) { v.doVerify() }
	v.data = newTextEntry(u.T("verify.data_hint"), esc)
	v.data.OnSubmitted = func(string) { v.doVerify() }
	browse := newButton(u.T("common.browse"), theme.FolderOpenIcon(), func() { v.askFile(v.in) }, esc)
	browseData := newButton(u.T("common.browse"), theme.FolderOpenIcon(), func() { v.askFile(v.data) }, esc)
	v.dataRow = labelled(fieldLabel(u.T("verify.data")), container.NewBorder(nil, nil, nil, browseData, v.data))
	v.online = widget.NewCheck(u.T("verify.online"), nil)
	v.online.Checked = !u.cfg.VerifyOffline
	v.submit = newButton(u.T("verify.submit"), theme.ConfirmIcon(), v.doVerify, esc)
	v.submit.Importance = widget.HighImportance
	v.extract = newButton(u.T("verify.extract"), theme.DocumentSaveIcon(), v.askExtract, esc)
	v.extract.Disable()
	v.close = newButton(u.T("common.close"), nil, esc, esc)
	v.report = container.NewVBox()
	top := container.NewVBox(
		heading(u.T("verify.heading")),
		para(u.T("verify.intro")),
		labelled(fieldLabel(u.T("verify.file")), container.NewBorder(nil, nil, nil, browse, v.in)),
		v.dataRow,
		v.online,
	)
	bottom := container.NewVBox(v.t.widgets(), buttons(v.extract, v.close, v.submit))
	v.in.SetText(prevIn)
	v.data.SetText(prevData)
	v.fileChanged()
	if v.rep != nil {
		v.show(v.rep)
	}
	return container.NewPadded(container.NewBorder(top, bottom, nil, nil, container.NewVScroll(v.report)))
}

// fileChanged shows the original-file field only for a detached .p7s.
func (v *verifyView) fileChanged() {
	if strings.HasSuffix(strings.ToLower(strings.TrimSpace(v.in.Text)), ".p7s") {
		v.dataRow.Show()
	} else {
		v.dataRow.Hide()
	}
}

func (v *verifyView) askFile(dst *escEntry) {
	w := v.u.window(WinVerify)
	if w == nil {
		return
	}
	dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil || rc == nil {
			return
		}
		rc.Close()
		dst.SetText(rc.URI().Path())
		v.fileChanged()
	}, w).Show()
}

// isPDF tells a PDF by its first bytes, whatever its name.
func isPDF(f *os.File) bool {
	head := make([]byte, 1024)
	n, _ := f.ReadAt(head, 0)
	return bytes.Contains(head[:n], []byte("%PDF-"))
}

func (v *verifyView) doVerify() {
	u := v.u
	if v.t.busy() {
		return
	}
	in := strings.TrimSpace(v.in.Text)
	data := ""
	if v.dataRow.Visible() {
		data = strings.TrimSpace(v.data.Text)
	}
	if in == "" {
		v.t.result(false, u.T("verify.no_file"))
		u.focusIn(WinVerify, v.in)
		return
	}
	opts := sign.VerifyOptions{Roots: u.cfg.TrustRoots, Online: v.online.Checked}
	var rep *sign.Report
	v.t.start(u.T("verify.progress"), func(ctx context.Context) error {
		var err error
		rep, err = verifyFile(ctx, in, data, opts)
		return err
	}, func(err error) {
		v.rep = rep
		if err != nil {
			v.report.Objects = nil
			v.report.Refresh()
			v.extract.Disable()
			v.t.result(false, u.signProblem(err))
			return
		}
		v.show(rep)
		if rep.Format == sign.FormatCAdESAttached {
			v.extract.Enable()
		} else {
			v.extract.Disable()
		}
		v.t.resultWith(rep.Valid(), v.summary(rep), v.summary(rep)+"\n"+v.text(rep))
	})
}

// verifyFile verifies the signed file in (and the original data of a .p7s).
func verifyFile(ctx context.Context, in, data string, opts sign.VerifyOptions) (*sign.Report, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if isPDF(f) {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		return sign.VerifyPDF(ctx, f, st.Size(), opts)
	}
	var orig io.Reader
	if data != "" {
		df, err := os.Open(data)
		if err != nil {
			return nil, err
		}
		defer df.Close()
		orig = df
	}
	return sign.VerifyCAdES(ctx, f, orig, opts)
}

// verdictText names a verdict in the current language.
func (v *verifyView) verdictText(vd sign.Verdict) string {
	switch vd {
	case sign.VerdictValid:
		return v.u.T("verify.valid")
	case sign.VerdictInvalid:
		return v.u.T("verify.invalid")
	case sign.VerdictUntrusted:
		return v.u.T("verify.untrusted")
	case sign.VerdictIndeterminate:
		return v.u.T("verify.indeterminate")
	}
	return string(vd)
}

func (v *verifyView) stateText(s sign.State) string {
	switch s {
	case sign.StateOK:
		return v.u.T("verify.check_ok")
	case sign.StateFailed:
		return v.u.T("verify.check_failed")
	case sign.StateNotChecked:
		return v.u.T("verify.check_not_done")
	}
	return v.u.T("verify.check_unknown")
}

// formatText names the kind of signed file in the current language.
func (v *verifyView) formatText(f sign.Format) string {
	switch f {
	case sign.FormatCAdESAttached:
		return v.u.T("verify.format_p7m")
	case sign.FormatCAdESDetached:
		return v.u.T("verify.format_p7s")
	case sign.FormatPAdES:
		return v.u.T("verify.format_pdf")
	}
	return string(f)
}

// summary is the one-line outcome of the whole file.
func (v *verifyView) summary(r *sign.Report) string {
	n := 0
	var count func([]*sign.Signature)
	count = func(list []*sign.Signature) {
		for _, s := range list {
			n++
			count(s.Countersignatures)
		}
	}
	count(r.Signatures)
	if r.Valid() {
		return v.u.N("verify.summary_valid", n)
	}
	return v.u.N("verify.summary_not_valid", n)
}

// lines describes each signature: verdict, signer, time, checks.
func (v *verifyView) lines(r *sign.Report) [][]string {
	u := v.u
	var out [][]string
	var walk func(list []*sign.Signature)
	walk = func(list []*sign.Signature) {
		for _, s := range list {
			who := s.Signer.Name
			if s.Signer.GivenName != "" || s.Signer.Surname != "" {
				who = HolderName(cie.Holder{GivenName: s.Signer.GivenName, Surname: s.Signer.Surname})
			}
			if s.Signer.FiscalCode != "" {
				who += " (" + s.Signer.FiscalCode + ")"
			}
			block := []string{
				u.T("verify.signature_n", map[string]any{"ID": s.ID}) + ": " + v.verdictText(s.Verdict),
				u.T("verify.signer") + ": " + who,
			}
			if s.SigningTime != nil {
				block = append(block, u.T("verify.time")+": "+s.SigningTime.Local().Format("02/01/2006 15:04:05"))
			}
			block = append(block,
				u.T("verify.issuer")+": "+s.Signer.Issuer,
				u.T("verify.integrity")+": "+v.finding(s.Integrity),
				u.T("verify.signing_cert")+": "+v.finding(s.SigningCertificate),
				u.T("verify.chain")+": "+v.finding(s.Chain),
				u.T("verify.revocation")+": "+v.finding(s.Revocation),
			)
			if s.PDF != nil && !s.PDF.CoversWholeDocument {
				block = append(block, u.T("verify.pdf_changed_after"))
			}
			for _, w := range s.Warnings {
				block = append(block, "⚠ "+w)
			}
			out = append(out, block)
			walk(s.Countersignatures)
		}
	}
	walk(r.Signatures)
	return out
}

func (v *verifyView) finding(f sign.Finding) string {
	s := v.stateText(f.State)
	if f.Detail != "" {
		s += " (" + f.Detail + ")"
	}
	return s
}

func (v *verifyView) text(r *sign.Report) string {
	var b strings.Builder
	for _, block := range v.lines(r) {
		b.WriteString(strings.Join(block, "\n") + "\n")
	}
	return b.String()
}

// show puts the report in the window: a card per signature.
func (v *verifyView) show(r *sign.Report) {
	v.report.Objects = nil
	v.report.Add(heading(v.summary(r)))
	v.report.Add(para(v.u.T("verify.format") + ": " + v.formatText(r.Format)))
	for _, block := range v.lines(r) {
		head := widget.NewLabelWithStyle(block[0], fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		if strings.HasSuffix(block[0], v.verdictText(sign.VerdictValid)) {
			head.Importance = widget.SuccessImportance
		} else if strings.HasSuffix(block[0], v.verdictText(sign.VerdictInvalid)) {
			head.Importance = widget.DangerImportance
		} else {
			head.Importance = widget.WarningImportance
		}
		body := para(strings.Join(block[1:], "\n"))
		body.Selectable = true
		v.report.Add(head)
		v.report.Add(body)
	}
	if r.NestedError != "" {
		v.report.Add(para(r.NestedError))
	}
	v.report.Refresh()
}

func (v *verifyView) askExtract() {
	w := v.u.window(WinVerify)
	in := strings.TrimSpace(v.in.Text)
	if w == nil || in == "" {
		return
	}
	fd := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil || wc == nil {
			return
		}
		err = v.extractTo(wc, in)
		if cerr := wc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			v.t.result(false, v.u.signProblem(err))
			return
		}
		v.t.result(true, v.u.T("verify.extracted", map[string]any{"Path": wc.URI().Path()}))
	}, w)
	fd.SetFileName(strings.TrimSuffix(filepath.Base(in), filepath.Ext(in)))
	fd.Show()
}

// extractTo writes the content of the .p7m in to w.
func (v *verifyView) extractTo(w io.Writer, in string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = sign.Extract(ctx, w, f)
	return err
}

// DefaultTrustDir returns os.UserConfigDir()/cie-desktop/trust, where the
// verify window finds the trust anchors (PEM files of CA certificates).
func DefaultTrustDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the configuration directory: %w", err)
	}
	return filepath.Join(dir, "cie-desktop", "trust"), nil
}

// LoadTrustRoots reads the PEM certificates in dir as trust anchors for
// verification; nil (and no error) when there are none.
func LoadTrustRoots(dir string) (*x509.CertPool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading trust anchors: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading trust anchors: %w", err)
		}
		if pool.AppendCertsFromPEM(b) {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	return pool, nil
}
