// Package icon draws the pictures of CIE Desktop: the application icon and
// the tray icon for each state (no reader, reader without card, CIE
// present, PIN blocked). They are drawn in code (a card with its chip and a
// status badge) so that every size is sharp and the tray, the launcher and
// the installers share one source; PNG encodes them, the only format every
// system tray accepts.
//
// The installers' copies under installer/linux/desktop/icons are written by
// `go generate` (see gen.go) and a test checks that they match.
package icon

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"

	"golang.org/x/image/vector"
)

// Kind names one picture.
type Kind int

// The pictures.
const (
	// App is the application icon (launcher, windows, about box).
	App Kind = iota
	// NoReader: the tray when no reader is connected or pcscd does not run.
	NoReader
	// NoCard: a reader is there but holds no CIE.
	NoCard
	// Present: a CIE is on the reader and its PIN is usable.
	Present
	// Blocked: the CIE's PIN (or PUK) is blocked.
	Blocked
)

var kindNames = [...]string{"app", "no-reader", "no-card", "present", "blocked"}

// String returns the name used in file names, e.g. "no-card".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind-%d", int(k))
}

// Kinds lists every picture.
func Kinds() []Kind { return []Kind{App, NoReader, NoCard, Present, Blocked} }

// Colours of the pictures.
var (
	cardBlue  = color.RGBA{0x1F, 0x5F, 0xA8, 0xFF}
	cardGrey  = color.RGBA{0x86, 0x8C, 0x96, 0xFF}
	chipGold  = color.RGBA{0xE0, 0xB0, 0x3C, 0xFF}
	chipLine  = color.RGBA{0x8A, 0x62, 0x10, 0xFF}
	textLine  = color.NRGBA{0xFF, 0xFF, 0xFF, 0xC8}
	greenOK   = color.RGBA{0x2E, 0x9E, 0x44, 0xFF}
	redStop   = color.RGBA{0xD0, 0x31, 0x2D, 0xFF}
	greyBadge = color.RGBA{0x5F, 0x64, 0x6C, 0xFF}
	white     = color.RGBA{0xFF, 0xFF, 0xFF, 0xFF}
	italyG    = color.RGBA{0x00, 0x92, 0x46, 0xFF}
	italyR    = color.RGBA{0xCE, 0x2B, 0x37, 0xFF}
)

// painter draws shapes given in a 64×64 design grid onto an image of any size.
type painter struct {
	img   *image.RGBA
	scale float32
}

func (p *painter) fill(c color.Color, path func(z *vector.Rasterizer)) {
	b := p.img.Bounds()
	z := vector.NewRasterizer(b.Dx(), b.Dy())
	path(z)
	z.Draw(p.img, b, image.NewUniform(c), image.Point{})
}

// roundRect adds a rounded rectangle; reverse winds it the other way, which
// cuts it out of a shape added before in the same path.
func (p *painter) roundRect(z *vector.Rasterizer, x0, y0, x1, y1, r float32, reverse bool) {
	s := p.scale
	x0, y0, x1, y1, r = x0*s, y0*s, x1*s, y1*s, r*s
	const k = 0.5523 // cubic Bézier constant for a quarter circle
	if !reverse {
		z.MoveTo(x0+r, y0)
		z.LineTo(x1-r, y0)
		z.CubeTo(x1-r+k*r, y0, x1, y0+r-k*r, x1, y0+r)
		z.LineTo(x1, y1-r)
		z.CubeTo(x1, y1-r+k*r, x1-r+k*r, y1, x1-r, y1)
		z.LineTo(x0+r, y1)
		z.CubeTo(x0+r-k*r, y1, x0, y1-r+k*r, x0, y1-r)
		z.LineTo(x0, y0+r)
		z.CubeTo(x0, y0+r-k*r, x0+r-k*r, y0, x0+r, y0)
	} else {
		z.MoveTo(x0+r, y0)
		z.CubeTo(x0+r-k*r, y0, x0, y0+r-k*r, x0, y0+r)
		z.LineTo(x0, y1-r)
		z.CubeTo(x0, y1-r+k*r, x0+r-k*r, y1, x0+r, y1)
		z.LineTo(x1-r, y1)
		z.CubeTo(x1-r+k*r, y1, x1, y1-r+k*r, x1, y1-r)
		z.LineTo(x1, y0+r)
		z.CubeTo(x1, y0+r-k*r, x1-r+k*r, y0, x1-r, y0)
	}
	z.ClosePath()
}

// circle adds a circle of radius r centred on (cx, cy).
func (p *painter) circle(z *vector.Rasterizer, cx, cy, r float32) {
	s := p.scale
	cx, cy, r = cx*s, cy*s, r*s
	const k = 0.5523
	z.MoveTo(cx+r, cy)
	z.CubeTo(cx+r, cy+k*r, cx+k*r, cy+r, cx, cy+r)
	z.CubeTo(cx-k*r, cy+r, cx-r, cy+k*r, cx-r, cy)
	z.CubeTo(cx-r, cy-k*r, cx-k*r, cy-r, cx, cy-r)
	z.CubeTo(cx+k*r, cy-r, cx+r, cy-k*r, cx+r, cy)
	z.ClosePath()
}

// line adds a stroke of width w from (x0, y0) to (x1, y1) with square ends.
func (p *painter) line(z *vector.Rasterizer, x0, y0, x1, y1, w float32) {
	s := p.scale
	dx, dy := x1-x0, y1-y0
	n := float32(math.Hypot(float64(dx), float64(dy)))
	if n == 0 {
		return
	}
	// Half-width normal, and a half-width extension along the line.
	nx, ny := -dy/n*w/2, dx/n*w/2
	ex, ey := dx/n*w/2, dy/n*w/2
	x0, y0, x1, y1 = x0-ex, y0-ey, x1+ex, y1+ey
	z.MoveTo((x0+nx)*s, (y0+ny)*s)
	z.LineTo((x1+nx)*s, (y1+ny)*s)
	z.LineTo((x1-nx)*s, (y1-ny)*s)
	z.LineTo((x0-nx)*s, (y0-ny)*s)
	z.ClosePath()
}

// Draw returns the picture k at size×size pixels (size ≥ 16).
func Draw(k Kind, size int) *image.RGBA {
	size = max(size, 16)
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.Draw(img, img.Bounds(), image.Transparent, image.Point{}, draw.Src)
	p := &painter{img: img, scale: float32(size) / 64}

	switch k {
	case NoCard, NoReader:
		// An empty card outline: the reader waits for a card.
		p.fill(cardGrey, func(z *vector.Rasterizer) {
			p.roundRect(z, 3, 11, 61, 51, 6, false)
			p.roundRect(z, 7, 15, 57, 47, 3, true)
		})
		p.fill(cardGrey, func(z *vector.Rasterizer) { p.roundRect(z, 12, 24, 25, 35, 2, false) })
	default:
		p.fill(cardBlue, func(z *vector.Rasterizer) { p.roundRect(z, 3, 11, 61, 51, 6, false) })
		p.fill(chipGold, func(z *vector.Rasterizer) { p.roundRect(z, 10, 22, 25, 35, 2.5, false) })
		p.fill(chipLine, func(z *vector.Rasterizer) {
			p.line(z, 10, 28.5, 25, 28.5, 1.2)
			p.line(z, 17.5, 22, 17.5, 35, 1.2)
		})
		if k == App {
			p.fill(textLine, func(z *vector.Rasterizer) {
				p.line(z, 31, 24, 54, 24, 3)
				p.line(z, 31, 31, 50, 31, 3)
				p.line(z, 31, 38, 46, 38, 3)
			})
			// A green-white-red stripe along the bottom edge.
			p.fill(italyG, func(z *vector.Rasterizer) { p.roundRect(z, 10, 43, 19, 46, 1, false) })
			p.fill(white, func(z *vector.Rasterizer) { p.roundRect(z, 19, 43, 28, 46, 0.5, false) })
			p.fill(italyR, func(z *vector.Rasterizer) { p.roundRect(z, 28, 43, 37, 46, 1, false) })
		}
	}

	badge := func(c color.Color, mark func(z *vector.Rasterizer)) {
		p.fill(white, func(z *vector.Rasterizer) { p.circle(z, 47, 47, 16) })
		p.fill(c, func(z *vector.Rasterizer) { p.circle(z, 47, 47, 13.5) })
		p.fill(white, mark)
	}
	switch k {
	case Present:
		badge(greenOK, func(z *vector.Rasterizer) {
			p.line(z, 40, 47.5, 45, 52.5, 4)
			p.line(z, 45, 52.5, 54.5, 41.5, 4)
		})
	case Blocked:
		badge(redStop, func(z *vector.Rasterizer) { p.line(z, 40, 47, 54, 47, 5) })
	case NoReader:
		badge(greyBadge, func(z *vector.Rasterizer) {
			p.line(z, 41.5, 41.5, 52.5, 52.5, 4)
			p.line(z, 52.5, 41.5, 41.5, 52.5, 4)
		})
	}
	return img
}

// PNG returns Draw(k, size) encoded as PNG.
func PNG(k Kind, size int) []byte {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.DefaultCompression}
	if err := enc.Encode(&b, Draw(k, size)); err != nil {
		// Encoding an in-memory RGBA image into a buffer cannot fail.
		panic(fmt.Sprintf("icon: encoding PNG: %v", err))
	}
	return b.Bytes()
}
