/** The lab: the whole stack on this machine, on loopback. See README.md, "The lab". */
export {labUp, type LabOptions, type Progress} from './up.js'
export {labDown} from './down.js'
export {labStatus, type LabStatus, type LabProcessStatus} from './status.js'
export {labLayout, labPaths, type LabLayout, type LabHostLayout, type LabPostgresLayout, type LabEndpoint} from './layout.js'
export {checkPackages, missingPackages, aptInstallLine, type PackageNeed} from './packages.js'
