package sign

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // signature images may be JPEG
	_ "image/png"  // or PNG, with transparency
	"strings"
)

// Rect is a rectangle on a page in PDF points (1/72 inch), from the
// lower-left corner of the page's visible area (its crop box).
type Rect struct {
	X, Y, W, H float64
}

// Appearance is a visible signature.
type Appearance struct {
	// Page is the page number, from 1.
	Page int
	// Rect is where the signature goes on the page.
	Rect Rect
	// Image is a PNG or JPEG drawn at the left of the rectangle, its
	// aspect ratio and transparency (alpha channel or tRNS) kept. Optional.
	Image []byte
	// Text is the lines written at the right of the image; nil means the
	// default: "Firmato digitalmente da", the signer's name, the date.
	Text []string
}

// maxImagePixels bounds a decoded signature image.
const maxImagePixels = 16 << 20

// ErrBadImage: the signature image cannot be used.
var ErrBadImage = errors.New("sign: unusable signature image (PNG or JPEG expected)")

// ImageOK reports whether b is a PNG or JPEG image usable in a visible
// signature (at most 16 million pixels).
func ImageOK(b []byte) bool {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	return err == nil && cfg.Width > 0 && cfg.Height > 0 && cfg.Width*cfg.Height <= maxImagePixels
}

// appearanceObjects writes the appearance stream of a visible signature of
// size w×h and its resources into inc and returns the form's reference.
func appearanceObjects(inc *increment, a *Appearance, lines []string, w, h float64) (pdfRef, error) {
	var content bytes.Buffer
	res := newDict()
	textX, textW := 0.0, w
	if len(a.Image) > 0 {
		imgRef, iw, ih, err := imageObjects(inc, a.Image)
		if err != nil {
			return pdfRef{}, err
		}
		// Fit the image in the rectangle's height and at most half its
		// width (all of it without text), keeping the aspect ratio.
		maxW := w
		if len(lines) > 0 {
			maxW = w / 2
		}
		scale := min(maxW/float64(iw), h/float64(ih))
		dw, dh := float64(iw)*scale, float64(ih)*scale
		fmt.Fprintf(&content, "q %s 0 0 %s 0 %s cm /Im1 Do Q\n", formatReal(dw), formatReal(dh), formatReal((h-dh)/2))
		xo := newDict()
		xo.set("Im1", imgRef)
		res.set("XObject", xo)
		textX, textW = dw+2, w-dw-2
	}
	if len(lines) > 0 && textW > 4 {
		font := newDict()
		font.set("Type", pdfName("Font"))
		font.set("Subtype", pdfName("Type1"))
		font.set("BaseFont", pdfName("Helvetica"))
		font.set("Encoding", pdfName("WinAnsiEncoding"))
		fontRef := inc.alloc()
		inc.add(fontRef, font)
		fonts := newDict()
		fonts.set("F1", fontRef)
		res.set("Font", fonts)

		const margin, leading = 2.0, 1.25
		encoded := make([][]byte, len(lines))
		size := (h - 2*margin) / (float64(len(lines)) * leading)
		for i, line := range lines {
			encoded[i] = winAnsi(line)
			if tw := helveticaWidth(encoded[i]); tw > 0 {
				size = min(size, (textW-2*margin)*1000/tw)
			}
		}
		size = min(size, 12)
		content.WriteString("BT 0.1 0.1 0.4 rg\n")
		top := (h+float64(len(lines))*size*leading)/2 - size
		for i, line := range encoded {
			fmt.Fprintf(&content, "/F1 %s Tf 1 0 0 1 %s %s Tm ", formatReal(size), formatReal(textX+margin), formatReal(top-float64(i)*size*leading))
			var s bytes.Buffer
			writeString(&s, pdfString(line))
			content.Write(s.Bytes())
			content.WriteString(" Tj\n")
		}
		content.WriteString("ET\n")
	}
	form := newDict()
	form.set("Type", pdfName("XObject"))
	form.set("Subtype", pdfName("Form"))
	form.set("BBox", pdfArray{int64(0), int64(0), w, h})
	form.set("Resources", res)
	ref := inc.alloc()
	inc.addStream(ref, form, content.Bytes())
	return ref, nil
}

// imageObjects decodes a PNG or JPEG and writes it as an RGB image
// XObject with, when any pixel is not opaque, a soft mask (/SMask) made
// from the alpha channel: transparency is kept, never turned black. Colours
// are taken un-premultiplied (color.NRGBA), so semi-transparent edges keep
// their colour.
func imageObjects(inc *increment, data []byte) (pdfRef, int, int, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return pdfRef{}, 0, 0, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return pdfRef{}, 0, 0, fmt.Errorf("%w: %d×%d pixels", ErrBadImage, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return pdfRef{}, 0, 0, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	rgb := make([]byte, 0, w*h*3)
	alpha := make([]byte, 0, w*h)
	opaque := true
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			rgb = append(rgb, c.R, c.G, c.B)
			alpha = append(alpha, c.A)
			if c.A != 0xFF {
				opaque = false
			}
		}
	}
	dict := func(cs string) *pdfDict {
		d := newDict()
		d.set("Type", pdfName("XObject"))
		d.set("Subtype", pdfName("Image"))
		d.set("Width", int64(w))
		d.set("Height", int64(h))
		d.set("ColorSpace", pdfName(cs))
		d.set("BitsPerComponent", int64(8))
		d.set("Filter", pdfName("FlateDecode"))
		return d
	}
	img1 := dict("DeviceRGB")
	if !opaque {
		maskRef := inc.alloc()
		inc.addStream(maskRef, dict("DeviceGray"), deflate(alpha))
		img1.set("SMask", maskRef)
	}
	ref := inc.alloc()
	inc.addStream(ref, img1, deflate(rgb))
	return ref, w, h, nil
}

func deflate(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// winAnsi encodes s for a WinAnsiEncoding font: ASCII and Latin-1
// letters as themselves (the Italian accented letters are all there), the
// euro sign and typographic quotes at their code points, anything else "?".
func winAnsi(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7F, r >= 0xA0 && r <= 0xFF:
			out = append(out, byte(r))
		case r == '€':
			out = append(out, 0x80)
		case r == '‘':
			out = append(out, 0x91)
		case r == '’':
			out = append(out, 0x92)
		case r == '“':
			out = append(out, 0x93)
		case r == '”':
			out = append(out, 0x94)
		case r == '–':
			out = append(out, 0x96)
		default:
			out = append(out, '?')
		}
	}
	return out
}

// helveticaASCII are the Helvetica glyph widths (AFM, 1/1000 em) of
// characters 32–126.
var helveticaASCII = [95]int{
	278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space … /
	556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0 … ?
	1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @ … O
	667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P … _
	333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // ` … o
	556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p … ~
}

// helveticaWidth is the width of WinAnsi text in 1/1000 of the font size.
func helveticaWidth(s []byte) float64 {
	var w int
	for _, c := range s {
		switch {
		case c >= 32 && c <= 126:
			w += helveticaASCII[c-32]
		case strings.IndexByte("\xC0\xC1\xC2\xC3\xC4\xC5\xC8\xC9\xCA\xCB\xDD", c) >= 0:
			w += 667
		case strings.IndexByte("\xC7\xD1\xD9\xDA\xDB\xDC\xD0", c) >= 0:
			w += 722
		case strings.IndexByte("\xD2\xD3\xD4\xD5\xD6\xD8", c) >= 0:
			w += 778
		case strings.IndexByte("\xCC\xCD\xCE\xCF\xEC\xED\xEE\xEF", c) >= 0:
			w += 278
		case c == 0xE7:
			w += 500
		default:
			w += 556
		}
	}
	return float64(w)
}
