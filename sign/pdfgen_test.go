package sign

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"sync"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// makePDF writes a small PDF 1.4 with a classic cross-reference table:
// pages A4 pages, each with a line of text. With form, page 1 carries a
// text field whose widget sits in an /Annots array stored as its own
// object, and the catalog has an /AcroForm object. extra is added to the
// catalog dictionary.
func makePDF(t testing.TB, pages int, form bool, extra ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	offsets := map[int]int{}
	obj := func(n int, body string) {
		offsets[n] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, body)
	}
	b.WriteString("%PDF-1.4\n%\xE2\xE3\xCF\xD3\n")
	kids := ""
	for i := range pages {
		kids += fmt.Sprintf("%d 0 R ", 10+2*i)
	}
	catalog := "<< /Type /Catalog /Pages 2 0 R >>"
	if form {
		catalog = "<< /Type /Catalog /Pages 2 0 R /AcroForm 5 0 R >>"
	}
	for _, e := range extra {
		catalog = catalog[:len(catalog)-2] + e + " >>"
	}
	obj(1, catalog)
	obj(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 595 842] >>", kids, pages))
	obj(3, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	if form {
		obj(4, "<< /Type /Annot /Subtype /Widget /FT /Tx /T (Nome) /V (Mario) /Rect [72 600 300 620] /P 10 0 R /F 4 >>")
		obj(5, "<< /Fields [4 0 R] /DA (/Helv 0 Tf 0 g) >>")
		obj(6, "[4 0 R]")
	}
	for i := range pages {
		page := fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R", 11+2*i)
		if form && i == 0 {
			page += " /Annots 6 0 R"
		}
		obj(10+2*i, page+" >>")
		text := fmt.Sprintf("BT /F1 18 Tf 72 760 Td (Pagina %d: contratto di prova) Tj ET\n0.9 0.9 0.9 rg 0 0 595 400 re f\n", i+1)
		obj(11+2*i, fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(text), text))
	}
	size := 10 + 2*pages
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f\r\n", size)
	for n := 1; n < size; n++ {
		if off, ok := offsets[n]; ok {
			fmt.Fprintf(&b, "%010d 00000 n\r\n", off)
		} else {
			b.WriteString("0000000000 00000 f\r\n")
		}
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R /ID [<0123456789ABCDEF0123456789ABCDEF> <0123456789ABCDEF0123456789ABCDEF>] >>\nstartxref\n%d\n%%%%EOF\n", size, xref)
	return b.Bytes()
}

// noPdfcpuConfig keeps pdfcpu from creating its configuration directory
// in the user's home during tests.
var noPdfcpuConfig sync.Once

func pdfcpuConfig() *model.Configuration {
	noPdfcpuConfig.Do(api.DisableConfigDir)
	return model.NewDefaultConfiguration()
}

// xrefStreamPDF rewrites a PDF with pdfcpu, which writes object streams
// and a cross-reference stream.
func xrefStreamPDF(t testing.TB, in []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	conf := pdfcpuConfig()
	conf.WriteObjectStream, conf.WriteXRefStream = true, true
	if err := api.Optimize(bytes.NewReader(in), &out, conf); err != nil {
		t.Fatalf("pdfcpu optimize: %v", err)
	}
	if !bytes.Contains(out.Bytes(), []byte("/XRef")) || !bytes.Contains(out.Bytes(), []byte("/ObjStm")) {
		t.Fatal("pdfcpu wrote no cross-reference stream or object stream")
	}
	return out.Bytes()
}

// signaturePNG is a 120×60 palette PNG with a tRNS chunk: a transparent
// background, an opaque red bar at the top and a half-transparent blue bar
// at the bottom — what a scanned handwritten signature looks like.
func signaturePNG(t testing.TB) []byte {
	t.Helper()
	pal := color.Palette{
		color.NRGBA{0, 0, 0, 0},       // transparent (black underneath: the trap)
		color.NRGBA{200, 0, 0, 255},   // opaque red
		color.NRGBA{0, 0, 255, 128},   // half-transparent blue
		color.NRGBA{255, 255, 255, 0}, // transparent white
	}
	img := image.NewPaletted(image.Rect(0, 0, 120, 60), pal)
	for y := range 60 {
		for x := range 120 {
			switch {
			case y < 15:
				img.SetColorIndex(x, y, 1)
			case y >= 45:
				img.SetColorIndex(x, y, 2)
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
