package sim

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The plot's palette: a paletted image keeps each PNG to a few tens of KB.
var (
	white     = color.RGBA{255, 255, 255, 255}
	ink       = color.RGBA{40, 40, 40, 255}
	gridGrey  = color.RGBA{232, 232, 232, 255}
	loadFill  = color.RGBA{222, 222, 222, 255}
	loadLine  = color.RGBA{150, 150, 150, 255}
	lineColor = []color.RGBA{
		{31, 119, 180, 255}, // blue: the first result (Sluice)
		{255, 127, 14, 255}, // orange
		{44, 160, 44, 255},  // green
		{214, 39, 40, 255},  // red
	}
)

const (
	plotW, plotH = 960, 440
	left, right  = 60, 80 // margins around the plotting area
	top, bottom  = 66, 50
)

// Plot draws a PNG of the trace's arrival rate and the replicas each
// result asked for over time. The left axis counts replicas; the right
// one is the load in req/s, scaled so that one replica's capacity
// (MaxOngoing / Service) lines up with one replica: where the load area
// rises above a policy's line, that policy is short of capacity.
func Plot(w io.Writer, tr Trace, m Model, results []Result) error {
	pal := color.Palette{white, ink, gridGrey, loadFill, loadLine}
	for _, c := range lineColor {
		pal = append(pal, c)
	}
	img := image.NewPaletted(image.Rect(0, 0, plotW, plotH), pal)
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)

	area := image.Rect(left, top, plotW-right, plotH-bottom)
	yMax := float64(m.Max + 1)
	perReplica := float64(m.MaxOngoing) / m.Service.Seconds() // req/s one replica serves
	x := func(t time.Duration) int {
		return area.Min.X + int(float64(area.Dx())*t.Seconds()/tr.Duration.Seconds())
	}
	y := func(replicas float64) int {
		return area.Max.Y - int(float64(area.Dy())*replicas/yMax)
	}

	// The load: the trace's rate as a filled area under the grid, its
	// outline over it; lone requests as ticks on the time axis.
	var outline []image.Point
	for _, s := range results[0].Samples {
		p := image.Pt(x(s.At), y(s.Rate/perReplica))
		fill(img, image.Rect(p.X, p.Y, p.X+1, area.Max.Y), loadFill)
		outline = append(outline, p)
	}

	// Grid and ticks: replicas every 4 (left), req/s alike (right),
	// minutes every 5 (bottom).
	for r := 0; r <= m.Max; r += 4 {
		fill(img, image.Rect(area.Min.X, y(float64(r)), area.Max.X, y(float64(r))+1), gridGrey)
		text(img, area.Min.X-8-7*len(fmt.Sprint(r)), y(float64(r))+4, ink, fmt.Sprint(r))
		text(img, area.Max.X+8, y(float64(r))+4, ink, fmt.Sprintf("%.0f", float64(r)*perReplica))
	}
	for t := time.Duration(0); t <= tr.Duration; t += 5 * time.Minute {
		fill(img, image.Rect(x(t), area.Min.Y, x(t)+1, area.Max.Y), gridGrey)
		label := fmt.Sprint(int(t.Minutes()))
		text(img, x(t)-7*len(label)/2, area.Max.Y+18, ink, label)
	}

	for i := 1; i < len(outline); i++ {
		line(img, outline[i-1], outline[i], loadLine)
	}
	for _, s := range tr.Singles {
		fill(img, image.Rect(x(s)-1, area.Max.Y-10, x(s)+1, area.Max.Y), ink)
	}

	// Each policy's replicas as a step line, 2 px thick, just above its
	// value. Lines that coincide would hide each other, so each one sits
	// 2 px above the one before.
	for i, r := range results {
		c := lineColor[i%len(lineColor)]
		off := 2 + 2*i
		for j, s := range r.Samples {
			x0, y0 := x(s.At), y(float64(s.Replicas))-off
			if j == 0 {
				x0 = area.Min.X
			}
			x1 := area.Max.X
			if j+1 < len(r.Samples) {
				x1 = x(r.Samples[j+1].At)
				y1 := y(float64(r.Samples[j+1].Replicas)) - off
				fill(img, image.Rect(x1, min(y0, y1), x1+2, max(y0, y1)+2), c)
			}
			fill(img, image.Rect(x0, y0, x1+2, y0+2), c)
		}
	}

	// Axes, labels, title and legend.
	fill(img, image.Rect(area.Min.X, area.Min.Y, area.Min.X+1, area.Max.Y+1), ink)
	fill(img, image.Rect(area.Max.X, area.Min.Y, area.Max.X+1, area.Max.Y+1), ink)
	fill(img, image.Rect(area.Min.X, area.Max.Y, area.Max.X+1, area.Max.Y+1), ink)
	text(img, area.Min.X-28, area.Min.Y-9, ink, "replicas")
	text(img, area.Max.X-28, area.Min.Y-9, ink, "load, req/s")
	text(img, area.Min.X+area.Dx()/2-35, area.Max.Y+38, ink, "time (min)")
	text(img, left, 18, ink, fmt.Sprintf("%s: replicas asked for, and the arrival rate (%.0f req/s = 1 replica)", tr.Name, perReplica))

	lx := left
	legend := func(name string, mark func(x, y int)) {
		mark(lx, 36)
		text(img, lx+26, 40, ink, name)
		lx += 26 + 7*len(name) + 22
	}
	legend("load", func(x, y int) {
		fill(img, image.Rect(x, y-5, x+20, y+5), loadFill)
		fill(img, image.Rect(x, y-5, x+20, y-4), loadLine)
	})
	for i, r := range results {
		c := lineColor[i%len(lineColor)]
		legend(r.Policy, func(x, y int) { fill(img, image.Rect(x, y-1, x+20, y+1), c) })
	}
	if len(tr.Singles) > 0 {
		legend("lone request", func(x, y int) { fill(img, image.Rect(x+9, y-5, x+11, y+5), ink) })
	}
	return (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(w, img)
}

func fill(img draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// line draws a 1 px line from a to b (Bresenham).
func line(img *image.Paletted, a, b image.Point, c color.Color) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	e := dx + dy
	for {
		img.Set(a.X, a.Y, c)
		if a == b {
			return
		}
		if 2*e >= dy {
			e += dy
			a.X += sx
		}
		if 2*e <= dx {
			e += dx
			a.Y += sy
		}
	}
}

// text writes s with its baseline at y.
func text(img draw.Image, x, y int, c color.Color, s string) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
