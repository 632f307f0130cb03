package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ciedesktop/cie-desktop/sign"
)

// progressThreshold is the file size from which a progress bar is shown.
const progressThreshold = 16 << 20

// maxImageFile bounds the signature image read from disk.
const maxImageFile = 16 << 20

// fileFlags parses a subcommand's flags, which may come before or after
// its file arguments, and returns the file arguments.
func (a *app) fileFlags(name string, args []string, def func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.reader, "reader", a.reader, "")
	fs.BoolVar(&a.pinStdin, "pin-stdin", a.pinStdin, "")
	def(fs)
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &usageError{fmt.Sprintf("%s: %v; run 'cie help'", name, err)}
		}
		if fs.NArg() == 0 {
			return files, nil
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// kind is what a file to sign or verify is.
type kind int

const (
	kindOther kind = iota
	kindPDF
	kindSigned // a .p7m or .p7s
)

// sniff reads the start of a file to tell a PDF or a CMS signed file from
// anything else; the name is not trusted.
func sniff(path string) (kind, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, &inputFileError{err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, &inputFileError{err}
	}
	if st.IsDir() {
		return 0, 0, &usageError{fmt.Sprintf("%s is a directory", path)}
	}
	head := make([]byte, 1024)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.Contains(head, []byte("%PDF-")):
		return kindPDF, st.Size(), nil
	case sign.LooksSigned(head):
		return kindSigned, st.Size(), nil
	}
	return kindOther, st.Size(), nil
}

// inputFileError is a file that cannot be read.
type inputFileError struct{ err error }

func (e *inputFileError) Error() string {
	var pe *os.PathError
	if errors.As(e.err, &pe) {
		return fmt.Sprintf("cannot read %s: %v", pe.Path, pe.Err)
	}
	return e.err.Error()
}

func (e *inputFileError) Unwrap() error { return e.err }

func (a *app) sign(ctx context.Context, args []string) error {
	var (
		format, out, rect, image, data string
		reason, location               string
		detached, visible              bool
		page, countersign              int
	)
	files, err := a.fileFlags("sign", args, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "", "")
		fs.BoolVar(&detached, "detached", false, "")
		fs.BoolVar(&visible, "visible", false, "")
		fs.IntVar(&page, "page", 0, "")
		fs.StringVar(&rect, "rect", "", "")
		fs.StringVar(&image, "image", "", "")
		fs.StringVar(&data, "data", "", "")
		fs.IntVar(&countersign, "countersign", 0, "")
		fs.StringVar(&reason, "reason", "", "")
		fs.StringVar(&location, "location", "", "")
		fs.StringVar(&out, "o", "", "")
	})
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return &usageError{"sign: name one file to sign: cie sign FILE [--format cades|pades] [-o OUT]"}
	}
	in := files[0]
	k, size, err := sniff(in)
	if err != nil {
		return err
	}
	visible = visible || page > 0 || rect != "" || image != ""
	switch format {
	case "":
		format = "cades"
		if k == kindPDF {
			format = "pades"
		}
	case "cades", "pades":
	default:
		return &usageError{fmt.Sprintf("sign: --format %q: say cades or pades", format)}
	}
	switch {
	case format == "pades" && k != kindPDF:
		return &usageError{fmt.Sprintf("sign: %s is not a PDF: PAdES signs PDF documents only (use --format cades)", in)}
	case format == "pades" && (detached || countersign > 0 || data != ""):
		return &usageError{"sign: --detached, --countersign and --data are for CAdES (.p7m/.p7s) signatures"}
	case format == "cades" && (visible || reason != "" || location != ""):
		return &usageError{"sign: --visible, --page, --rect, --image, --reason and --location are for PDF (PAdES) signatures"}
	case k != kindSigned && (countersign > 0 || data != ""):
		return &usageError{"sign: --countersign and --data apply to a file that is already signed (.p7m/.p7s)"}
	case k == kindSigned && detached:
		return &usageError{"sign: the file is already signed: a new signature keeps its form (attached or detached)"}
	case countersign < 0:
		return &usageError{"sign: --countersign N: N is the number of the signature, from 1"}
	}
	if out == "" {
		out = defaultSignedName(in, format, detached, k == kindSigned)
		if _, err := os.Stat(out); err == nil {
			return &usageError{fmt.Sprintf("sign: %s already exists: choose the output with -o", out)}
		}
	}
	if samePath(in, out) {
		return &usageError{"sign: the output must not be the file being signed"}
	}

	// Everything that can be checked without the card is checked first.
	var doc *sign.PDF
	var docFile *os.File
	var appearance *sign.Appearance
	if format == "pades" {
		if docFile, err = os.Open(in); err != nil {
			return &inputFileError{err}
		}
		defer docFile.Close()
		if doc, err = sign.OpenPDF(docFile, size); err != nil {
			return fmt.Errorf("reading %s: %w", in, err)
		}
		if visible {
			if appearance, err = parseAppearance(doc, page, rect, image); err != nil {
				return err
			}
		}
	}
	if k == kindSigned && data == "" && countersign == 0 {
		f, err := os.Open(in)
		if err != nil {
			return &inputFileError{err}
		}
		detachedSig, err := sign.IsDetached(f)
		f.Close()
		if err != nil {
			return err
		}
		if detachedSig {
			return &usageError{fmt.Sprintf("sign: %s is a detached signature: give the signed file with --data ORIGINAL", in)}
		}
	}
	var dataFile *os.File
	if data != "" {
		if dataFile, err = os.Open(data); err != nil {
			return &inputFileError{err}
		}
		defer dataFile.Close()
	}

	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := a.verifyPIN(ctx, s); err != nil {
		return err
	}
	// The paired card's certificate comes from its record (the session's
	// handshake proved the card is the record's); package sign checks the
	// signature against it anyway.
	cert, err := s.Certificate(ctx)
	if err != nil {
		return err
	}
	id := sign.IdentityOf(cert)
	fmt.Fprintf(a.env.Stderr, "Signing %s as %s (codice fiscale %s)\n", in, id.Name, id.FiscalCode)
	opts := sign.Options{Signer: s.Card.Signer(cert), Chain: []*x509.Certificate{cert}}
	bar := a.progressBar("Signing", size)
	opts.Progress = bar.update

	err = writeAtomically(out, func(w io.Writer) error {
		switch {
		case format == "pades":
			return doc.Sign(ctx, w, sign.PAdESOptions{Options: opts, Visible: appearance, Reason: reason, Location: location})
		case k == kindSigned:
			f, err := os.Open(in)
			if err != nil {
				return &inputFileError{err}
			}
			defer f.Close()
			var d io.Reader
			if dataFile != nil {
				d = dataFile
			}
			return sign.AddCAdES(ctx, w, f, size, d, sign.AddOptions{Options: opts, Countersign: countersign})
		default:
			f, err := os.Open(in)
			if err != nil {
				return &inputFileError{err}
			}
			defer f.Close()
			return sign.SignCAdES(ctx, w, bufio.NewReaderSize(f, 1<<20), size, sign.CAdESOptions{Options: opts, Detached: detached})
		}
	})
	bar.done()
	if err != nil {
		return err
	}
	what := map[string]string{"pades": "PAdES signature in the PDF", "cades": "CAdES signature (.p7m)"}[format]
	switch {
	case countersign > 0:
		what = fmt.Sprintf("counter-signature of signature %d", countersign)
	case k == kindSigned:
		what = "parallel signature"
	case detached:
		what = "detached CAdES signature (.p7s)"
	}
	fmt.Fprintf(a.env.Stdout, "Signed (%s): %s\n", what, out)
	return nil
}

// defaultSignedName is doc.pdf → doc-signed.pdf (PAdES), file → file.p7m
// or file.p7s (CAdES), x.p7m → x-signed.p7m (a signature added).
func defaultSignedName(in, format string, detached, signed bool) string {
	switch {
	case format == "pades" || signed:
		ext := filepath.Ext(in)
		return strings.TrimSuffix(in, ext) + "-signed" + ext
	case detached:
		return in + ".p7s"
	}
	return in + ".p7m"
}

func samePath(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// parseAppearance reads --page (default 1), --rect x,y,w,h (points from
// the page's lower-left corner; default 200×60 points in the lower right
// corner) and --image.
func parseAppearance(doc *sign.PDF, page int, rect, image string) (*sign.Appearance, error) {
	if page == 0 {
		page = 1
	}
	pw, ph, err := doc.PageSize(page)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("sign: --page %d: the document has %d pages", page, doc.NumPages())}
	}
	a := &sign.Appearance{Page: page, Rect: sign.Rect{X: pw - 236, Y: 36, W: 200, H: 60}}
	if rect != "" {
		parts := strings.Split(rect, ",")
		var v [4]float64
		if len(parts) != 4 {
			return nil, &usageError{"sign: --rect x,y,w,h: four numbers in points (1/72 inch) from the lower-left corner of the page"}
		}
		for i, p := range parts {
			if v[i], err = strconv.ParseFloat(strings.TrimSpace(p), 64); err != nil {
				return nil, &usageError{fmt.Sprintf("sign: --rect: %q is not a number", p)}
			}
		}
		a.Rect = sign.Rect{X: v[0], Y: v[1], W: v[2], H: v[3]}
		if v[2] < 20 || v[3] < 10 || v[0] < 0 || v[1] < 0 || v[0]+v[2] > pw || v[1]+v[3] > ph {
			return nil, &usageError{fmt.Sprintf("sign: --rect %s does not fit page %d (%.0f×%.0f points) or is too small", rect, page, pw, ph)}
		}
	}
	if image != "" {
		f, err := os.Open(image)
		if err != nil {
			return nil, &inputFileError{err}
		}
		defer f.Close()
		a.Image, err = io.ReadAll(io.LimitReader(f, maxImageFile+1))
		if err != nil {
			return nil, &inputFileError{err}
		}
		if len(a.Image) > maxImageFile {
			return nil, &usageError{fmt.Sprintf("sign: --image %s is larger than 16 MiB", image)}
		}
		if !sign.ImageOK(a.Image) {
			return nil, &usageError{fmt.Sprintf("sign: --image %s is not a PNG or JPEG image", image)}
		}
	}
	return a, nil
}

// writeAtomically writes path through a temporary file in the same
// directory, renamed over path only when write succeeds.
func writeAtomically(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(w); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// progress is a one-line progress bar on standard error for large files.
type progress struct {
	w       io.Writer
	label   string
	total   int64
	last    int
	started bool
}

func (a *app) progressBar(label string, total int64) *progress {
	if total < progressThreshold {
		return &progress{last: 101}
	}
	return &progress{w: a.env.Stderr, label: label, total: total, last: -1}
}

// update draws the bar when the percentage changes; done counts bytes read,
// which may run to twice the file (hash, then copy).
func (p *progress) update(done, total int64) {
	if p.w == nil {
		return
	}
	if total <= 0 {
		total = p.total
	}
	pct := int(min(done*100/max(total, 1), 100))
	if pct == p.last {
		return
	}
	p.last, p.started = pct, true
	const width = 30
	fill := pct * width / 100
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% of %s", p.label, strings.Repeat("#", fill), strings.Repeat(" ", width-fill), pct, humanSize(p.total))
}

func (p *progress) done() {
	if p.w != nil && p.started {
		fmt.Fprintln(p.w)
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// caFlag collects --ca files.
type caFlag []string

func (c *caFlag) String() string     { return strings.Join(*c, ",") }
func (c *caFlag) Set(s string) error { *c = append(*c, s); return nil }

// loadRoots reads trust anchors from PEM or DER certificate files.
func loadRoots(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, &inputFileError{err}
		}
		n := 0
		for rest := b; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, &usageError{fmt.Sprintf("--ca %s: %v", name, err)}
			}
			pool.AddCert(c)
			n++
		}
		if n == 0 {
			c, err := x509.ParseCertificate(b)
			if err != nil {
				return nil, &usageError{fmt.Sprintf("--ca %s: no certificate (PEM or DER) in it", name)}
			}
			pool.AddCert(c)
		}
	}
	return pool, nil
}

func (a *app) verify(ctx context.Context, args []string) error {
	var (
		data           string
		cas            caFlag
		online, asJSON bool
	)
	files, err := a.fileFlags("verify", args, func(fs *flag.FlagSet) {
		fs.StringVar(&data, "data", "", "")
		fs.Var(&cas, "ca", "")
		fs.BoolVar(&online, "online", false, "")
		fs.BoolVar(&asJSON, "json", false, "")
	})
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return &usageError{"verify: name one signed file: cie verify FILE [--data ORIGINAL] [--ca CA.pem] [--online] [--json]"}
	}
	in := files[0]
	k, size, err := sniff(in)
	if err != nil {
		return err
	}
	roots, err := loadRoots(cas)
	if err != nil {
		return err
	}
	opts := sign.VerifyOptions{Roots: roots, Online: online}
	f, err := os.Open(in)
	if err != nil {
		return &inputFileError{err}
	}
	defer f.Close()
	var rep *sign.Report
	switch k {
	case kindPDF:
		if data != "" {
			return &usageError{"verify: --data is for detached .p7s signatures, not PDFs"}
		}
		rep, err = sign.VerifyPDF(ctx, f, size, opts)
	case kindSigned:
		var d io.Reader
		if data != "" {
			df, err := os.Open(data)
			if err != nil {
				return &inputFileError{err}
			}
			defer df.Close()
			d = bufio.NewReaderSize(df, 1<<20)
		}
		bar := a.progressBar("Verifying", size)
		rep, err = sign.VerifyCAdES(ctx, &progressReader{r: f, p: bar}, d, opts)
		bar.done()
	default:
		return &usageError{fmt.Sprintf("verify: %s is neither a signed file (.p7m/.p7s) nor a PDF", in)}
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(a.env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(a.env.Stdout, in, rep, roots == nil, online)
	}
	if !rep.Valid() {
		return &notValidError{rep}
	}
	return nil
}

// notValidError: verification ran, and not every signature is valid.
type notValidError struct{ rep *sign.Report }

func (e *notValidError) Error() string {
	var bad []string
	var walk func(r *sign.Report)
	walk = func(r *sign.Report) {
		var each func([]*sign.Signature)
		each = func(list []*sign.Signature) {
			for _, s := range list {
				if s.Verdict != sign.VerdictValid {
					bad = append(bad, fmt.Sprintf("signature %s is %s", s.ID, s.Reason))
				}
				each(s.Countersignatures)
			}
		}
		each(r.Signatures)
		if r.Nested != nil {
			walk(r.Nested)
		}
	}
	walk(e.rep)
	if len(bad) == 0 {
		return "the file has no signature"
	}
	return strings.Join(bad, "; ")
}

// progressReader reports the bytes read to a progress bar.
type progressReader struct {
	r    io.Reader
	p    *progress
	done int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.done += int64(n)
	r.p.update(r.done, 0)
	return n, err
}

// printReport writes the verification for a person.
func printReport(w io.Writer, name string, rep *sign.Report, noRoots, online bool) {
	fmt.Fprintf(w, "File: %s\nFormat: %s\n", name, rep.Format)
	printSignatures(w, rep, "")
	total, valid := count(rep)
	fmt.Fprintf(w, "\nResult: %d of %d signatures valid.\n", valid, total)
	if noRoots && valid < total {
		fmt.Fprintln(w, "No trust anchor was given: a signature can be intact but not valid. Pass the CA certificates you trust with --ca FILE.")
	}
	if !online {
		fmt.Fprintln(w, "Revocation was not checked (offline); add --online to ask the certificate's OCSP responder.")
	}
}

func printSignatures(w io.Writer, rep *sign.Report, indent string) {
	var one func(s *sign.Signature, label, indent string)
	one = func(s *sign.Signature, label, indent string) {
		fmt.Fprintf(w, "\n%s%s %s: %s — %s\n", indent, label, s.ID, strings.ToUpper(string(s.Verdict)), s.Reason)
		in := indent + "  "
		if s.Certificate != nil {
			signer := s.Signer.Name
			if s.Signer.FiscalCode != "" {
				signer += ", codice fiscale " + s.Signer.FiscalCode
			}
			fmt.Fprintf(w, "%sSigner:         %s\n", in, signer)
			fmt.Fprintf(w, "%sCertificate:    issued by %s, serial %s, valid %s to %s\n", in, s.Signer.Issuer, s.Signer.SerialNumber,
				s.Signer.NotBefore.Format(time.DateOnly), s.Signer.NotAfter.Format(time.DateOnly))
		}
		if s.SigningTime != nil {
			fmt.Fprintf(w, "%sSigning time:   %s, from %s\n", in, s.SigningTime.Format("2006-01-02 15:04:05 -07:00"), s.SigningTimeSource)
		}
		if s.PDF != nil {
			cover := "the whole document"
			if !s.PDF.CoversWholeDocument {
				cover = fmt.Sprintf("revision %d of %d", s.PDF.Revision, s.PDF.Revisions)
			}
			fmt.Fprintf(w, "%sPDF field:      %s (%s), signs %s\n", in, s.PDF.Field, s.PDF.SubFilter, cover)
		}
		fmt.Fprintf(w, "%sIntegrity:      %s\n", in, s.Integrity)
		fmt.Fprintf(w, "%sSigning cert.:  %s\n", in, s.SigningCertificate)
		fmt.Fprintf(w, "%sTrust chain:    %s\n", in, s.Chain)
		fmt.Fprintf(w, "%sRevocation:     %s\n", in, s.Revocation)
		for _, warn := range s.Warnings {
			fmt.Fprintf(w, "%sWarning:        %s\n", in, warn)
		}
		for _, cs := range s.Countersignatures {
			one(cs, "Counter-signature", in)
		}
	}
	for _, s := range rep.Signatures {
		one(s, "Signature", indent)
	}
	if rep.NestedError != "" {
		fmt.Fprintf(w, "\n%sSigned file inside: %s\n", indent, rep.NestedError)
	}
	if rep.Nested != nil {
		fmt.Fprintf(w, "\n%sThe content is itself a signed file (%s):\n", indent, rep.Nested.Format)
		printSignatures(w, rep.Nested, indent+"  ")
	}
}

// count returns the number of signatures (counter-signatures and nested
// ones included) and how many are valid.
func count(rep *sign.Report) (total, valid int) {
	var each func([]*sign.Signature)
	each = func(list []*sign.Signature) {
		for _, s := range list {
			total++
			if s.Verdict == sign.VerdictValid {
				valid++
			}
			each(s.Countersignatures)
		}
	}
	for r := rep; r != nil; r = r.Nested {
		each(r.Signatures)
	}
	return total, valid
}

func (a *app) extract(ctx context.Context, args []string) error {
	var out string
	files, err := a.fileFlags("extract", args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "")
	})
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return &usageError{"extract: name one .p7m file: cie extract FILE.p7m [-o OUT]"}
	}
	in := files[0]
	k, _, err := sniff(in)
	if err != nil {
		return err
	}
	if k != kindSigned {
		return &usageError{fmt.Sprintf("extract: %s is not a signed file (.p7m)", in)}
	}
	if out == "" {
		out = in
		for {
			ext := filepath.Ext(out)
			if !strings.EqualFold(ext, ".p7m") {
				break
			}
			out = strings.TrimSuffix(out, ext)
		}
		if out == in {
			return &usageError{fmt.Sprintf("extract: %s does not end in .p7m: name the output with -o", in)}
		}
		if _, err := os.Stat(out); err == nil {
			return &usageError{fmt.Sprintf("extract: %s already exists: name the output with -o", out)}
		}
	}
	f, err := os.Open(in)
	if err != nil {
		return &inputFileError{err}
	}
	defer f.Close()
	var levels int
	if out == "-" {
		levels, err = sign.Extract(ctx, a.env.Stdout, f)
		if err != nil {
			return err
		}
	} else {
		if samePath(in, out) {
			return &usageError{"extract: the output must not be the signed file"}
		}
		if err := writeAtomically(out, func(w io.Writer) error {
			levels, err = sign.Extract(ctx, w, f)
			return err
		}); err != nil {
			return err
		}
	}
	where := out
	if out == "-" {
		where = "standard output"
	}
	fmt.Fprintf(a.env.Stderr, "Extracted the signed content (%d signed envelope(s) removed) to %s. The signatures were not verified: run 'cie verify %s'.\n", levels, where, in)
	return nil
}
