package tray

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// placement is where a visible signature goes, as fractions of the page:
// X and Y of the top-left corner from the page's top-left, W and H.
type placement struct {
	X, Y, W, H float64
}

// clamp keeps the rectangle inside the page.
func (p placement) clamp() placement {
	p.X = min(max(p.X, 0), 1-p.W)
	p.Y = min(max(p.Y, 0), 1-p.H)
	return p
}

// Corner presets of the placement, with a margin of 5 % of the page.
const margin = 0.05

func presetPlacement(corner int, w, h float64) placement {
	p := placement{W: w, H: h}
	switch corner {
	case 0: // bottom right
		p.X, p.Y = 1-margin-w, 1-margin-h
	case 1: // bottom left
		p.X, p.Y = margin, 1-margin-h
	case 2: // top right
		p.X, p.Y = 1-margin-w, margin
	default: // top left
		p.X, p.Y = margin, margin
	}
	return p.clamp()
}

// pagePreview shows a page in its proportions with the signature's
// rectangle on it. Tapping or dragging moves the rectangle; with the
// keyboard focus, the arrow keys move it by 2 % of the page.
type pagePreview struct {
	widget.BaseWidget
	aspect   float64 // page width / height
	place    placement
	label    string
	onChange func(placement)
	focused  bool
	esc      func()
}

func newPagePreview(label string, esc func()) *pagePreview {
	p := &pagePreview{aspect: 210.0 / 297.0, label: label, esc: esc}
	p.ExtendBaseWidget(p)
	return p
}

// previewHeight is the height of the drawn page.
const previewHeight = 220

// MinSize keeps the page's proportions at previewHeight.
func (p *pagePreview) MinSize() fyne.Size {
	return fyne.NewSize(float32(previewHeight*p.aspect), previewHeight)
}

// pageRect is the drawn page within the widget.
func (p *pagePreview) pageRect() (fyne.Position, fyne.Size) {
	sz := p.Size()
	h := min(sz.Height, float32(float64(sz.Width)/p.aspect))
	w := float32(float64(h) * p.aspect)
	return fyne.NewPos((sz.Width-w)/2, (sz.Height-h)/2), fyne.NewSize(w, h)
}

func (p *pagePreview) set(pl placement) {
	p.place = pl.clamp()
	p.Refresh()
	if p.onChange != nil {
		p.onChange(p.place)
	}
}

// moveTo centres the rectangle on pos (widget coordinates).
func (p *pagePreview) moveTo(pos fyne.Position) {
	o, s := p.pageRect()
	if s.Width == 0 || s.Height == 0 {
		return
	}
	pl := p.place
	pl.X = float64((pos.X-o.X)/s.Width) - pl.W/2
	pl.Y = float64((pos.Y-o.Y)/s.Height) - pl.H/2
	p.set(pl)
}

// Tapped moves the rectangle to the tap.
func (p *pagePreview) Tapped(ev *fyne.PointEvent) { p.moveTo(ev.Position) }

// Dragged moves the rectangle with the pointer.
func (p *pagePreview) Dragged(ev *fyne.DragEvent) { p.moveTo(ev.Position) }

// DragEnd ends a drag.
func (p *pagePreview) DragEnd() {}

// FocusGained shows the focus.
func (p *pagePreview) FocusGained() { p.focused = true; p.Refresh() }

// FocusLost hides the focus.
func (p *pagePreview) FocusLost() { p.focused = false; p.Refresh() }

// TypedRune ignores characters.
func (p *pagePreview) TypedRune(rune) {}

// TypedKey moves the rectangle with the arrows; Escape goes to the window.
func (p *pagePreview) TypedKey(ev *fyne.KeyEvent) {
	const step = 0.02
	pl := p.place
	switch ev.Name {
	case fyne.KeyLeft:
		pl.X -= step
	case fyne.KeyRight:
		pl.X += step
	case fyne.KeyUp:
		pl.Y -= step
	case fyne.KeyDown:
		pl.Y += step
	case fyne.KeyEscape:
		if p.esc != nil {
			p.esc()
		}
		return
	default:
		return
	}
	p.set(pl)
}

// CreateRenderer draws the page, the rectangle and the focus outline.
func (p *pagePreview) CreateRenderer() fyne.WidgetRenderer {
	page := canvas.NewRectangle(color.White)
	page.StrokeColor = color.Gray{Y: 0x80}
	page.StrokeWidth = 1
	lines := make([]fyne.CanvasObject, 8)
	for i := range lines {
		l := canvas.NewRectangle(color.Gray{Y: 0xD8})
		lines[i] = l
	}
	box := canvas.NewRectangle(color.NRGBA{R: 0x1F, G: 0x5F, B: 0xA8, A: 0x50})
	box.StrokeColor = color.NRGBA{R: 0x1F, G: 0x5F, B: 0xA8, A: 0xFF}
	box.StrokeWidth = 2
	text := canvas.NewText(p.label, color.NRGBA{R: 0x1F, G: 0x5F, B: 0xA8, A: 0xFF})
	text.TextSize = theme.CaptionTextSize()
	text.Alignment = fyne.TextAlignCenter
	r := &previewRenderer{p: p, page: page, lines: lines, box: box, text: text}
	r.objects = append(append([]fyne.CanvasObject{page}, lines...), box, text)
	return r
}

type previewRenderer struct {
	p       *pagePreview
	page    *canvas.Rectangle
	lines   []fyne.CanvasObject
	box     *canvas.Rectangle
	text    *canvas.Text
	objects []fyne.CanvasObject
}

// Layout places the page, its text bars and the signature's rectangle.
func (r *previewRenderer) Layout(fyne.Size) {
	o, s := r.p.pageRect()
	r.page.Move(o)
	r.page.Resize(s)
	// Grey bars stand for the text of the page.
	for i, l := range r.lines {
		l.Move(fyne.NewPos(o.X+s.Width*0.1, o.Y+s.Height*(0.1+0.07*float32(i))))
		l.Resize(fyne.NewSize(s.Width*0.8, max(s.Height*0.015, 1)))
	}
	pl := r.p.place
	bo := fyne.NewPos(o.X+s.Width*float32(pl.X), o.Y+s.Height*float32(pl.Y))
	bs := fyne.NewSize(s.Width*float32(pl.W), s.Height*float32(pl.H))
	r.box.Move(bo)
	r.box.Resize(bs)
	ts := r.text.MinSize()
	r.text.Move(fyne.NewPos(bo.X, bo.Y+(bs.Height-ts.Height)/2))
	r.text.Resize(fyne.NewSize(bs.Width, ts.Height))
}

// MinSize is the preview's.
func (r *previewRenderer) MinSize() fyne.Size { return r.p.MinSize() }

// Refresh redraws the focus outline, the label and the rectangle.
func (r *previewRenderer) Refresh() {
	if r.p.focused {
		r.page.StrokeColor = theme.Color(theme.ColorNameFocus)
		r.page.StrokeWidth = 3
	} else {
		r.page.StrokeColor = color.Gray{Y: 0x80}
		r.page.StrokeWidth = 1
	}
	r.text.Text = r.p.label
	r.Layout(r.p.Size())
	canvas.Refresh(r.p)
}

// Objects returns what is drawn.
func (r *previewRenderer) Objects() []fyne.CanvasObject { return r.objects }

// Destroy has nothing to release.
func (r *previewRenderer) Destroy() {}
