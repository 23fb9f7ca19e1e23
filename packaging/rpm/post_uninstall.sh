# $1 is 0 when the package is erased (not upgraded).
if [ "$1" -eq 0 ]; then
    sed -i '\#^/usr/sbin/sftpd-wrapper$#d' /etc/shells
fi
