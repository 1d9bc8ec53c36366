/* crtfs - the engine library: include this one header. */
#ifndef CRTFS_CRTFS_H
#define CRTFS_CRTFS_H

#include <crtfs/bufpool.h>
#include <crtfs/engine.h>
#include <crtfs/error.h>
#include <crtfs/lines.h>
#include <crtfs/loop.h>
#include <crtfs/sim.h>
#include <crtfs/target.h>

#endif
