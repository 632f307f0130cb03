package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

// writeRandomFile writes size pseudo-random bytes (ChaCha8, fixed seed) to
// path: content that no layer can compress or skip.
func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	src := rand.NewChaCha8([32]byte{'c', 'i', 'e', '-', 'b', 'e', 'n', 'c', 'h'})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), left)]
		_, _ = src.Read(chunk) // ChaCha8.Read never fails
		if _, err := w.Write(chunk); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// textPDF returns a PDF 1.7 document of pages A4 pages, each with about
// 3 KB of text in Helvetica, with a classic cross-reference table: a
// typical office letter or contract as a citizen signs it.
func textPDF(pages int) []byte {
	var b bytes.Buffer
	var offsets []int // of objects 1…n
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	b.WriteString("%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")
	// 1 catalog, 2 page tree, 3 font, then page i at 4+2i, its content at 5+2i.
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	kids := make([]string, pages)
	for i := range kids {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	for i := range pages {
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		var c strings.Builder
		fmt.Fprintf(&c, "BT /F1 11 Tf 14 TL 56 780 Td (Pagina %d di %d) Tj T*\n", i+1, pages)
		for l := range 48 {
			fmt.Fprintf(&c, "(Art. %d.%d - Il sottoscritto dichiara di aver letto e accettato le condizioni del contratto.) ' \n", i+1, l+1)
		}
		c.WriteString("ET")
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", c.Len(), c.String()))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}
