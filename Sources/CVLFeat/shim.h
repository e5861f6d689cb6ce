// CVLFeat: VLFeat 0.9.21. The Features target computes SIFT and dense SIFT with it; the
// benchmark and the tests use its encoders as the reference.
#include <vl/generic.h>
#include <vl/vlad.h>
#include <vl/fisher.h>
#include <vl/kmeans.h>
#include <vl/sift.h>
#include <vl/dsift.h>
#include <vl/imopv.h>
