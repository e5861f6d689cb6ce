// CImageCodecs: libjpeg-turbo and libpng, the decoders (and test encoders) of the
// ImageCodecs target, which wraps them so that no library error can end the process.
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
