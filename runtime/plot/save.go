package plot

import (
	"fmt"
	"image/color"
	"io"
	"strings"

	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// DPI is the default resolution of the PNG files: sharp on a laptop
// screen (a training figure is about 200 KB; 96 dpi halves that).
const DPI = 144

// Figure is something drawn onto a canvas of a given size.
type Figure struct {
	Width, Height vg.Length
	Draw          func(dc draw.Canvas)
}

// Save writes fig as base.png, at dpi dots per inch (0 means DPI), and
// base.svg (base is a path without an extension; a .png or .svg one is
// dropped) and returns the two paths.
func Save(fig Figure, base string, dpi int) ([]string, error) {
	if dpi <= 0 {
		dpi = DPI
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".png"), ".svg")
	var files []string
	for _, ext := range []string{".png", ".svg"} {
		path := base + ext
		var c interface {
			vg.CanvasSizer
			io.WriterTo
		}
		if ext == ".png" {
			c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(fig.Width, fig.Height), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))}
		} else {
			c = vgsvg.New(fig.Width, fig.Height)
		}
		dc := draw.New(c)
		dc.FillPolygon(color.White, []vg.Point{dc.Min, {X: dc.Max.X, Y: dc.Min.Y}, dc.Max, {X: dc.Min.X, Y: dc.Max.Y}})
		fig.Draw(dc)
		if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { _, err := c.WriteTo(w); return err }); err != nil {
			return files, fmt.Errorf("plot: %w", err)
		}
		files = append(files, path)
	}
	return files, nil
}
