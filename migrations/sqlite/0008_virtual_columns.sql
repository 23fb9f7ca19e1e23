
-- Version 8 computed the virtual time columns of version 6 more cheaply. Version 9 drops those
-- columns, so nothing is done here: a database of version 6 or 7 goes on to 9 as it is.
